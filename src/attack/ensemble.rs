//! Ensembles: attacks run in order, each only on the inputs every earlier
//! attack failed on, and an input counts as robust only if all failed —
//! AutoAttack's protocol. `autoattack` in a plan expands to the members of
//! one of the reference's versions (`fra31/auto-attack`, `set_version`),
//! each with the reference's settings: `standard` (APGD-CE, APGD-T with 9
//! target classes, FAB-T with 9, Square with 5,000 queries), `plus`
//! (APGD-CE and APGD-DLR with 5 restarts, FAB with 5, Square, APGD-T,
//! FAB-T) and `rand` (APGD-CE and APGD-DLR, each gradient averaged over
//! 20 draws of a randomized model: Expectation over Transformation). At L1
//! `standard` is the reference's L1 version ("Mind the box", Croce & Hein
//! 2021): APGD-CE with `use_largereps` and 5 restarts, APGD-T with
//! `use_largereps` on 5 target classes, FAB-T-L1 on 9 and Square-L1;
//! `plus` is refused at L1, where the reference tunes nothing and warns
//! that the combination is unchecked.

use serde::{Deserialize, Serialize};

use super::apgd::{ApgdConfig, ApgdLoss};
use super::fab::FabConfig;
use super::square::SquareConfig;
use super::{
    gather, Attack, AttackBatch, AttackConfig, AttackMethod, AttackOutcome, AttackSpec,
    BestTracker, Budget, Norm,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::Classifier;

/// The attacks of AutoAttack's standard version (Croce & Hein 2020), by
/// the names [`AttackMethod::label`] gives: what a robust accuracy must
/// have faced to be compared with RobustBench's.
pub const AUTOATTACK_STANDARD: &[&str] = &["APGD-CE", "APGD-T", "FAB-T", "Square"];

/// AutoAttack's APGD-T and FAB-T: the most likely other classes attacked.
pub const AUTOATTACK_TARGET_CLASSES: usize = 9;

/// Restarts of the untargeted attacks of AutoAttack's `plus` version.
pub const AUTOATTACK_PLUS_RESTARTS: usize = 5;

/// Draws each gradient of AutoAttack's `rand` version averages over (the
/// reference's `eot_iter = 20`).
pub const AUTOATTACK_RAND_EOT_SAMPLES: usize = 20;

/// Restarts of APGD-CE in AutoAttack's L1 `standard` version
/// (`autoattack.py`, `set_version`: `self.apgd.n_restarts = 5`).
pub const AUTOATTACK_L1_APGD_RESTARTS: usize = 5;

/// APGD-T's target classes in AutoAttack's L1 `standard` version
/// (`self.apgd_targeted.n_target_classes = 5`; FAB-T keeps 9).
pub const AUTOATTACK_L1_APGD_TARGET_CLASSES: usize = 5;

/// The members AutoAttack runs, by the reference's `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoAttackVersion {
    /// APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5,000
    /// queries): what RobustBench reports. At L1: APGD-CE (5 restarts) and
    /// APGD-T (5 targets) on the 3ε, 2ε, ε schedule, FAB-T, Square.
    Standard,
    /// APGD-CE and APGD-DLR (5 restarts each), FAB (5 restarts), Square,
    /// APGD-T and FAB-T (9 targets each): stronger, about 5× the cost; L∞
    /// and L2 only.
    Plus,
    /// APGD-CE and APGD-DLR (1 restart each), every gradient averaged over
    /// 20 draws: for randomized defences (dropout left on, random input
    /// transforms).
    Rand,
}

/// `version`'s values.
pub const AUTOATTACK_VERSIONS: &[(&str, AutoAttackVersion)] = &[
    ("standard", AutoAttackVersion::Standard),
    ("plus", AutoAttackVersion::Plus),
    ("rand", AutoAttackVersion::Rand),
];

/// An `ensemble` plan entry (`members`: names of earlier attacks sharing one
/// norm and one ε, which the entry takes; `norm` and `eps`, when written,
/// must match them) or an `autoattack` one (`norm`, default `linf`; `eps`,
/// required, a list giving a curve; `version`, `standard` (the default),
/// `plus`, which has no L1 version, or `rand`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnsembleConfig {
    /// The members' norm.
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "the members'"}}))]
    pub norm: Norm,
    /// The members' budget.
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "the members'"}}))]
    pub eps: Option<f64>,
    /// The member attacks, run in order on inputs still robust.
    #[serde(default)]
    pub members: Vec<AttackSpec>,
    /// For an `autoattack` entry: the reference's version its members are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<AutoAttackVersion>,
}

impl EnsembleConfig {
    /// Reads `members`, each resolved by the budget's lookup of earlier
    /// attacks; one config (none on an error).
    pub fn from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        let written = e.has("members");
        let Some(names) = e.strings("members") else {
            if !written {
                e.fail("members", "is missing");
            }
            return Vec::new();
        };
        if names.is_empty() {
            e.fail(
                "members",
                "must be a non-empty list of earlier attack names",
            );
            return Vec::new();
        }
        let mut members = Vec::with_capacity(names.len());
        for name in &names {
            match (budget.earlier)(name) {
                Ok(spec) => members.push(spec),
                Err(why) => e.fail("members", why),
            }
        }
        if members.len() < names.len() {
            return Vec::new();
        }
        let (norm, eps) = (members[0].norm(), members[0].eps());
        if members.iter().any(|m| m.norm() != norm || m.eps() != eps) {
            e.fail("members", "must share one norm and one ε");
            return Vec::new();
        }
        if budget.norm.is_some_and(|n| n != norm) {
            e.fail(
                "norm",
                format!("is {}, but the members' is {norm}", budget.norm()),
            );
        }
        match budget.eps.as_deref() {
            None | Some([]) => {}
            Some(&[x]) if Some(x) == eps => {}
            Some(&[x]) => e.fail(
                "eps",
                format!(
                    "is {x}, but the members' is {}",
                    eps.map_or("none".to_string(), |v| v.to_string())
                ),
            ),
            Some(_) => e.fail(
                "eps",
                "must be one number: an ensemble takes its members' ε",
            ),
        }
        vec![EnsembleConfig {
            norm,
            eps,
            members,
            version: None,
        }]
    }

    /// Reads an `autoattack` entry; one config per ε. `plus` at L1 is
    /// refused: the reference's `set_version('plus')` sets no L1 settings
    /// (no `use_largereps`, L∞/L2 target counts) and prints that the
    /// combination should be checked.
    pub fn autoattack_from_entry(e: &mut Entry, budget: &Budget) -> Vec<Self> {
        let version = e
            .choice("version", AUTOATTACK_VERSIONS)
            .unwrap_or(AutoAttackVersion::Standard);
        if budget.norm == Some(Norm::L1) && version == AutoAttackVersion::Plus {
            e.fail(
                "version",
                "\"plus\" has no L1 version in AutoAttack (the reference sets only L∞ and L2 settings for it and warns at L1): use version = \"standard\", AutoAttack's L1 protocol",
            );
        }
        let norm = budget.norm();
        budget
            .names()
            .into_iter()
            .zip(budget.eps_list(e))
            .map(|(name, eps)| EnsembleConfig::autoattack_version(&name, norm, eps, version))
            .collect()
    }

    /// AutoAttack "standard" for the entry `name`: APGD-CE, APGD-T (DLR, 9
    /// target classes; at L1 5, both APGDs with `use_largereps` and
    /// APGD-CE with 5 restarts), FAB-T (9 target classes) and Square
    /// (5,000 queries), each at the reference's settings, named
    /// `name/apgd-ce`, `name/apgd-t`, `name/fab-t` and `name/square`.
    pub fn autoattack(name: &str, norm: Norm, eps: f64) -> Self {
        Self::autoattack_version(name, norm, eps, AutoAttackVersion::Standard)
    }

    /// AutoAttack's `version` for the entry `name`, members in the
    /// reference's order, named `name/<member>`.
    pub fn autoattack_version(
        name: &str,
        norm: Norm,
        eps: f64,
        version: AutoAttackVersion,
    ) -> Self {
        let member = |suffix: &str, config| AttackSpec::new(format!("{name}/{suffix}"), config);
        let l1 = norm == Norm::L1;
        // `set_version('standard')` at L1: `use_largereps` for both APGDs,
        // 5 restarts of APGD-CE, 5 target classes for APGD-T.
        let apgd_ce = ApgdConfig {
            restarts: if l1 {
                AUTOATTACK_L1_APGD_RESTARTS
            } else {
                ApgdConfig::new(norm, eps).restarts
            },
            use_largereps: l1,
            ..ApgdConfig::new(norm, eps)
        };
        let apgd_t = ApgdConfig {
            loss: ApgdLoss::Dlr,
            target_classes: Some(if l1 {
                AUTOATTACK_L1_APGD_TARGET_CLASSES
            } else {
                AUTOATTACK_TARGET_CLASSES
            }),
            use_largereps: l1,
            ..ApgdConfig::new(norm, eps)
        };
        let fab_t = FabConfig::autoattack_targeted(norm, eps);
        // AutoAttack's Square counts the p schedule unscaled at every norm
        // (`resc_schedule=False` in `autoattack.py`); torchattacks'
        // AutoAttack rescales it, the original does not, and the original is
        // the protocol RobustBench reports.
        let square = SquareConfig::autoattack(norm, eps);
        let members = match version {
            AutoAttackVersion::Standard => vec![
                member("apgd-ce", AttackConfig::Apgd(apgd_ce)),
                member("apgd-t", AttackConfig::Apgd(apgd_t)),
                member("fab-t", AttackConfig::Fab(fab_t)),
                member("square", AttackConfig::Square(square)),
            ],
            AutoAttackVersion::Plus => {
                let restarts = AUTOATTACK_PLUS_RESTARTS;
                let ce = ApgdConfig {
                    restarts,
                    ..ApgdConfig::new(norm, eps)
                };
                let dlr = ApgdConfig {
                    loss: ApgdLoss::Dlr,
                    ..ce.clone()
                };
                let fab = FabConfig {
                    restarts,
                    ..FabConfig::new(norm, Some(eps))
                };
                vec![
                    member("apgd-ce", AttackConfig::Apgd(ce)),
                    member("apgd-dlr", AttackConfig::Apgd(dlr)),
                    member("fab", AttackConfig::Fab(fab)),
                    member("square", AttackConfig::Square(square)),
                    member("apgd-t", AttackConfig::Apgd(apgd_t)),
                    member("fab-t", AttackConfig::Fab(fab_t)),
                ]
            }
            AutoAttackVersion::Rand => {
                let ce = ApgdConfig {
                    eot_samples: AUTOATTACK_RAND_EOT_SAMPLES,
                    ..ApgdConfig::new(norm, eps)
                };
                let dlr = ApgdConfig {
                    loss: ApgdLoss::Dlr,
                    ..ce.clone()
                };
                vec![
                    member("apgd-ce", AttackConfig::Apgd(ce)),
                    member("apgd-dlr", AttackConfig::Apgd(dlr)),
                ]
            }
        };
        EnsembleConfig {
            norm,
            eps: Some(eps),
            members,
            version: Some(version),
        }
    }

    /// The runnable ensemble; one without members is an error (it would
    /// return the clean inputs: 100% "robust" without a single attack), and
    /// so is AutoAttack's `plus` at L1, which the reference does not set up.
    pub fn build(&self) -> Result<Ensemble> {
        if self.version == Some(AutoAttackVersion::Plus) && self.norm == Norm::L1 {
            return Err(Error::Invalid(
                "AutoAttack's \"plus\" version has no L1 settings (version = \"plus\", norm = \"l1\"): use version = \"standard\"".into(),
            ));
        }
        if self.members.is_empty() {
            return Err(Error::Invalid(
                "an ensemble needs its members: without them it would report every input robust"
                    .into(),
            ));
        }
        Ok(Ensemble {
            members: self
                .members
                .iter()
                .map(AttackSpec::build)
                .collect::<Result<_>>()?,
        })
    }
}

impl AttackMethod for EnsembleConfig {
    fn norm(&self) -> Norm {
        self.norm
    }
    fn eps(&self) -> Option<f64> {
        self.eps
    }
    fn attack(&self) -> Result<Box<dyn Attack>> {
        Ok(Box::new(self.build()?))
    }
    /// The members' names, joined by ` + `.
    fn label(&self) -> String {
        let labels: Vec<String> = self.members.iter().map(AttackSpec::label).collect();
        labels.join(" + ")
    }
    fn members(&self) -> &[AttackSpec] {
        &self.members
    }
    fn members_mut(&mut self) -> &mut [AttackSpec] {
        &mut self.members
    }
}

/// Attacks run in order on the inputs still robust.
pub struct Ensemble {
    /// The members, in order.
    pub members: Vec<Box<dyn Attack>>,
}

impl Attack for Ensemble {
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome> {
        let per = batch.item_len();
        let mut best = BestTracker::new(batch, None);
        let mut evaluations = 0;
        for (m, member) in self.members.iter().enumerate() {
            let rows = best.unbroken();
            if rows.is_empty() {
                break;
            }
            let x = gather(batch.x, &rows, per);
            let labels: Vec<u32> = rows.iter().map(|&i| batch.labels[i]).collect();
            let clean_logits: Vec<Vec<f32>> = rows
                .iter()
                .map(|&i| batch.clean_logits[i].clone())
                .collect();
            let indices: Vec<usize> = rows.iter().map(|&i| batch.indices[i]).collect();
            let sub = AttackBatch {
                x: &x,
                shape: [rows.len(), batch.shape[1], batch.shape[2], batch.shape[3]],
                labels: &labels,
                clean_logits: &clean_logits,
                indices: &indices,
                seed: batch.seed,
                // Each member draws from its own streams.
                stream: batch.stream.wrapping_mul(1_000).wrapping_add(m as u64 + 1),
            };
            let mut out = member.run(model, &sub)?;
            // A randomized model's inputs stay in the ensemble unless a
            // fresh draw confirms the break, as AutoAttack checks.
            super::judge_on_verdict_draw(model, &sub, &mut out)?;
            evaluations += out.gradient_evaluations;
            best.offer_rows(&rows, &out.adversarial, &out.logits, batch.labels, None);
        }
        Ok(best.into_outcome(None, evaluations))
    }
}
