//! Layer-wise Relevance Propagation (Bach et al. 2015, "On pixel-wise
//! explanations for non-linear classifier decisions by layer-wise relevance
//! propagation"), with Zennit 0.5.1's rules and composites (Anders et al.
//! 2021) and its batch-norm and ResNet canonizers:
//! [`crate::model::lrp`] holds the backward pass and says how each kind of
//! layer passes relevance.
//!
//! The map is the relevance at the model's input, in class-score units:
//! the explained class's logit (for a one-output model its log-odds) is put
//! on the output, as Captum's `LRP` does (Zennit's examples put 1 instead:
//! the maps differ by that factor). Rules that conserve relevance (ε, z⁺,
//! γ, αβ, flat, box; the Norm rule on pooling and residual sums; max
//! pooling's routing) make the map sum to the score up to what biases and
//! stabilizers absorb; the convergence delta reports `Σ map − score` per
//! input, as Captum's `LRP` does.
//!
//! Presets (`composite`, Zennit's names and defaults): `epsilon_plus_flat`
//! (default: flat on the first layer, z⁺ on convolutions, ε on linear
//! layers; Kohlbrenner et al. 2020 recommend it), `epsilon_gamma_box` (box
//! on the first layer when it is a convolution, γ on convolutions, ε on
//! linear layers), `epsilon_plus`, `epsilon_alpha2_beta1` and
//! `epsilon_alpha2_beta1_flat`. `first`, `conv` and `linear` override a
//! preset's rule for that kind of layer, and `rules` for named layers (by
//! their `inspect` position). The box rule's bounds are the model's declared
//! range passed through its normalization, so maps do not depend on how the
//! range is written.
//!
//! Runs on the reference path whatever engine the audit uses.
//!
//! Plan keys ([`LrpConfig`]): `composite`, `first`, `conv`, `linear`,
//! `rules`, `epsilon`, `gamma`, `alpha`, `beta`, `stabilizer`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use toml::Value;

use super::{check_batch, Attribution, ExplainBatch, Explanation, MethodSettings, SettingError};
use crate::entry::{did_you_mean, Entry};
use crate::error::{Error, Result};
use crate::model::lrp::{LrpRule, RuleAssignment};
use crate::model::{ArchSpec, Classifier};

/// ε of the ε rule by default (Zennit's).
pub const DEFAULT_EPSILON: f64 = 1e-6;
/// γ of the γ rule by default (Zennit's).
pub const DEFAULT_GAMMA: f64 = 0.25;
/// α of the αβ rule by default (Zennit's).
pub const DEFAULT_ALPHA: f64 = 2.0;
/// β of the αβ rule by default (Zennit's).
pub const DEFAULT_BETA: f64 = 1.0;
/// The stabilizer of every rule but ε by default (Zennit's).
pub const DEFAULT_STABILIZER: f64 = 1e-6;

/// Zennit's composites: which rule each kind of layer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Composite {
    /// Flat on the first layer, z⁺ on convolutions, ε on linear layers.
    EpsilonPlusFlat,
    /// Box on a first convolution, γ on convolutions, ε on linear layers.
    EpsilonGammaBox,
    /// z⁺ on convolutions, ε on linear layers.
    EpsilonPlus,
    /// αβ (α = 2, β = 1) on convolutions, ε on linear layers.
    EpsilonAlpha2Beta1,
    /// Flat on the first layer, αβ (2, 1) on convolutions, ε on linear layers.
    EpsilonAlpha2Beta1Flat,
}

impl Composite {
    /// Names as written in plans.
    pub const CHOICES: &'static [(&'static str, Composite)] = &[
        ("epsilon_plus_flat", Composite::EpsilonPlusFlat),
        ("epsilon_gamma_box", Composite::EpsilonGammaBox),
        ("epsilon_plus", Composite::EpsilonPlus),
        ("epsilon_alpha2_beta1", Composite::EpsilonAlpha2Beta1),
        (
            "epsilon_alpha2_beta1_flat",
            Composite::EpsilonAlpha2Beta1Flat,
        ),
    ];
}

/// A rule a plan names for a kind of layer or a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleName {
    /// LRP-ε with `epsilon`.
    Epsilon,
    /// LRP-0, the z-rule (ε = 0).
    Zero,
    /// LRP-γ with `gamma`.
    Gamma,
    /// z⁺.
    ZPlus,
    /// LRP-αβ with `alpha` and `beta`.
    AlphaBeta,
    /// Flat.
    Flat,
    /// w².
    WSquare,
    /// z^B, bounded by the model's range.
    Box,
}

impl RuleName {
    /// Names as written in plans.
    pub const CHOICES: &'static [(&'static str, RuleName)] = &[
        ("epsilon", RuleName::Epsilon),
        ("zero", RuleName::Zero),
        ("gamma", RuleName::Gamma),
        ("z_plus", RuleName::ZPlus),
        ("alpha_beta", RuleName::AlphaBeta),
        ("flat", RuleName::Flat),
        ("w_square", RuleName::WSquare),
        ("box", RuleName::Box),
    ];
}

/// The `lrp` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct LrpConfig {
    /// Zennit's preset (default `epsilon_plus_flat`).
    pub composite: Composite,
    /// The first convolution or linear layer's rule, over the preset's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "the composite's"}}))]
    pub first: Option<RuleName>,
    /// The convolutions' rule, over the preset's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "the composite's"}}))]
    pub conv: Option<RuleName>,
    /// The linear layers' rule, over the preset's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "the composite's"}}))]
    pub linear: Option<RuleName>,
    /// Rules for named layers (`inspect`'s positions, e.g. `"0"` or
    /// `"3.body.0"`), over everything else.
    #[schemars(extend("default" = {}))]
    pub rules: BTreeMap<String, RuleName>,
    /// The ε rule's ε (default 1e-6, Zennit's).
    #[schemars(range(min = 0.0))]
    pub epsilon: f64,
    /// The γ rule's γ (default 0.25, Zennit's).
    #[schemars(range(min = 0.0))]
    pub gamma: f64,
    /// The αβ rule's α (default 2); `alpha − beta` must be 1.
    #[schemars(range(min = 1.0))]
    pub alpha: f64,
    /// The αβ rule's β (default 1).
    #[schemars(range(min = 0.0))]
    pub beta: f64,
    /// Added (with the sign of the denominator) in every rule but ε
    /// (default 1e-6, Zennit's).
    #[schemars(range(min = 0.0))]
    pub stabilizer: f64,
}

impl Default for LrpConfig {
    fn default() -> Self {
        LrpConfig {
            composite: Composite::EpsilonPlusFlat,
            first: None,
            conv: None,
            linear: None,
            rules: BTreeMap::new(),
            epsilon: DEFAULT_EPSILON,
            gamma: DEFAULT_GAMMA,
            alpha: DEFAULT_ALPHA,
            beta: DEFAULT_BETA,
            stabilizer: DEFAULT_STABILIZER,
        }
    }
}

/// `rules`: a table of layer position → rule name.
fn read_rules(e: &mut Entry) -> BTreeMap<String, RuleName> {
    const KEY: &str = "rules";
    let mut out = BTreeMap::new();
    let Some(v) = e.take(KEY) else {
        return out;
    };
    let Value::Table(t) = v else {
        e.fail(
            KEY,
            format!(
                "must be a table of layer position = rule name, found {}",
                v.type_str()
            ),
        );
        return out;
    };
    let names: Vec<&str> = RuleName::CHOICES.iter().map(|c| c.0).collect();
    for (layer, rule) in t {
        match rule
            .as_str()
            .and_then(|s| RuleName::CHOICES.iter().find(|c| c.0 == s))
        {
            Some((_, r)) => {
                out.insert(layer, *r);
            }
            None => e.fail(
                KEY,
                format!(
                    "layer \"{layer}\": {} is not a rule ({}){}",
                    rule,
                    names.join(", "),
                    rule.as_str()
                        .map(|s| did_you_mean(s, &names))
                        .unwrap_or_default()
                ),
            ),
        }
    }
    out
}

impl MethodSettings for LrpConfig {
    type Method = Lrp;

    fn from_entry(e: &mut Entry) -> Self {
        let d = LrpConfig::default();
        let mut c = LrpConfig {
            composite: e
                .choice("composite", Composite::CHOICES)
                .unwrap_or(d.composite),
            first: e.choice("first", RuleName::CHOICES),
            conv: e.choice("conv", RuleName::CHOICES),
            linear: e.choice("linear", RuleName::CHOICES),
            rules: read_rules(e),
            epsilon: e.nonneg_float("epsilon").unwrap_or(d.epsilon),
            gamma: e.nonneg_float("gamma").unwrap_or(d.gamma),
            alpha: e.nonneg_float("alpha").unwrap_or(d.alpha),
            beta: e.nonneg_float("beta").unwrap_or(d.beta),
            stabilizer: e.nonneg_float("stabilizer").unwrap_or(d.stabilizer),
        };
        if ((c.alpha - c.beta) - 1.0).abs() > 1e-12 {
            e.fail(
                "alpha",
                format!(
                    "minus `beta` must be 1 (relevance is conserved only then; Zennit's check), found {} − {}",
                    c.alpha, c.beta
                ),
            );
            c.alpha = d.alpha;
            c.beta = d.beta;
        }
        c
    }

    /// Every layer `rules` names must be a convolution or linear layer.
    fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let fail = |message: String| SettingError {
            key: "rules",
            message,
        };
        let infos = model
            .layer_infos()
            .map_err(|m| fail(format!("cannot be checked: {m}")))?;
        let weighted: Vec<&str> = infos
            .iter()
            .filter(|l| l.description.starts_with("conv2d") || l.description.starts_with("linear"))
            .map(|l| l.path.as_str())
            .collect();
        for layer in self.rules.keys() {
            if !weighted.contains(&layer.as_str()) {
                return Err(fail(format!(
                    "\"{layer}\" is not the position of a conv2d or linear layer of the model{} (those: {})",
                    did_you_mean(layer, &weighted),
                    weighted.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn build(&self, _input_hw: (usize, usize)) -> Lrp {
        let rule = |r: RuleName| match r {
            RuleName::Epsilon => LrpRule::Epsilon(self.epsilon),
            RuleName::Zero => LrpRule::Epsilon(0.0),
            RuleName::Gamma => LrpRule::Gamma(self.gamma),
            RuleName::ZPlus => LrpRule::ZPlus,
            RuleName::AlphaBeta => LrpRule::AlphaBeta(self.alpha, self.beta),
            RuleName::Flat => LrpRule::Flat,
            RuleName::WSquare => LrpRule::WSquare,
            RuleName::Box => LrpRule::ZBox,
        };
        let eps = LrpRule::Epsilon(self.epsilon);
        let (first, first_conv_only, conv) = match self.composite {
            Composite::EpsilonPlusFlat => (Some(LrpRule::Flat), false, LrpRule::ZPlus),
            Composite::EpsilonGammaBox => (Some(LrpRule::ZBox), true, LrpRule::Gamma(self.gamma)),
            Composite::EpsilonPlus => (None, false, LrpRule::ZPlus),
            Composite::EpsilonAlpha2Beta1 => (None, false, LrpRule::AlphaBeta(2.0, 1.0)),
            Composite::EpsilonAlpha2Beta1Flat => {
                (Some(LrpRule::Flat), false, LrpRule::AlphaBeta(2.0, 1.0))
            }
        };
        Lrp {
            rules: RuleAssignment {
                first: self.first.map(rule).or(first),
                first_conv_only: self.first.is_none() && first_conv_only,
                conv: self.conv.map(rule).unwrap_or(conv),
                linear: self.linear.map(rule).unwrap_or(eps),
                by_layer: self
                    .rules
                    .iter()
                    .map(|(k, v)| (k.clone(), rule(*v)))
                    .collect::<HashMap<_, _>>(),
                stabilizer: self.stabilizer,
            },
        }
    }
}

/// LRP by a rule assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrp {
    /// Which rule each layer gets.
    pub rules: RuleAssignment,
}

impl Attribution for Lrp {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        check_batch(model, batch)?;
        let net = model.network().ok_or_else(|| {
            Error::Invalid(
                "LRP needs the model's layers, and this classifier does not expose them".into(),
            )
        })?;
        let r = net.lrp(batch.x, batch.classes, &self.rules)?;
        let sums: Vec<f32> = r.map.flatten_from(1)?.sum(1)?.to_vec1()?;
        let delta = sums
            .iter()
            .zip(&r.scores)
            .map(|(&s, &z)| s as f64 - z)
            .collect();
        Ok(Explanation {
            maps: r.map,
            convergence_delta: Some(delta),
            noise: None,
        })
    }

    fn model_calls(&self) -> usize {
        2
    }
}
