//! Adversarial attacks. Each attack lives in its own file, with its plan
//! config (defaults, `from_entry`, `build`, [`AttackMethod`]), and runs
//! batched on a [`Classifier`]'s logits (never its probabilities). The
//! family is the `attacks!` list below: one line per kind writes
//! [`AttackConfig`], [`KINDS`] and [`READERS`], so adding an attack is its
//! file plus one line there. Shared here: norms, targets, each sample's
//! random generator ([`Rng::for_item`]), the projected step, and the
//! bookkeeping that keeps the best adversarial found per sample across steps
//! and restarts.
//!
//! The pitfalls each of these guards against have bitten well-known
//! libraries: clip to the valid range after every step, project onto the
//! ε-ball after every step (and correct float round-off so ‖δ‖ ≤ ε holds
//! exactly), `sign(0) = 0`, keep the best point rather than the last iterate,
//! and count a sample as robust only if no step of any restart broke it.

pub mod apgd;
pub mod cw;
pub mod deepfool;
pub mod ensemble;
pub mod fab;
pub mod fgsm;
pub mod fmn;
pub mod pgd;
pub mod results;
pub mod spatial;
pub mod spec;
pub mod square;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use spec::{AttackMethod, AttackSpec, Budget, Reader};

use crate::entry::Entry;
use crate::error::{Error, Result};

/// Writes the family's enum (tagged by `kind`), its list of kinds, the table
/// of its readers and the dispatch to each kind's [`AttackMethod`], from one
/// line per kind: `"kind" => Variant(Config)`, reading with
/// `Config::from_entry` unless a `read` function follows.
macro_rules! attacks {
    ($( $(#[$doc:meta])* $kind:literal => $variant:ident($config:ty) $(read $read:path)?, )+) => {
        /// An attack's kind and settings, tagged by `kind`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        pub enum AttackConfig {
            $( $(#[$doc])* #[serde(rename = $kind)] $variant($config), )+
        }

        /// The kinds, in the order of [`AttackConfig`].
        pub const KINDS: &[&str] = &[$($kind),+];

        /// Each kind with the reader of its settings.
        pub const READERS: &[(&str, Reader)] = &[
            $( ($kind, |e: &mut Entry, b: &Budget| {
                attacks!(@read $config $(, $read)?)(e, b)
                    .into_iter()
                    .map(AttackConfig::$variant)
                    .collect()
            }), )+
        ];

        impl AttackConfig {
            /// The kind, as plans and reports write it.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( AttackConfig::$variant(_) => $kind, )+
                }
            }

            /// The config, as what every attack offers.
            pub fn method(&self) -> &dyn AttackMethod {
                match self {
                    $( AttackConfig::$variant(c) => c, )+
                }
            }

            /// The config, to complete it against a model.
            pub fn method_mut(&mut self) -> &mut dyn AttackMethod {
                match self {
                    $( AttackConfig::$variant(c) => c, )+
                }
            }
        }
    };
    (@read $config:ty) => { <$config>::from_entry };
    (@read $config:ty, $read:path) => { $read };
}

// The family: one line per attack (its config in its own file).
attacks! {
    /// The fast gradient sign method (Goodfellow et al. 2015): one step of
    /// size ε.
    "fgsm" => Fgsm(fgsm::FgsmConfig),
    /// Projected gradient descent (Madry et al. 2018): steps projected onto
    /// the ε-ball, torchattacks' step.
    "pgd" => Pgd(pgd::PgdConfig),
    /// Auto-PGD (Croce & Hein 2020): momentum and checkpointed step halving;
    /// CE or DLR loss, untargeted or targeted (APGD-T).
    "apgd" => Apgd(apgd::ApgdConfig),
    /// The worst rotation and translation per input (Engstrom et al. 2019),
    /// over a grid or random draws; no ε.
    "spatial" => Spatial(spatial::SpatialConfig),
    /// The Square attack (Andriushchenko et al. 2020): random square updates,
    /// gradient-free (logits only), stopping per input once broken; L∞, L2
    /// and L1 (Croce et al. 2021).
    "square" => Square(square::SquareConfig),
    /// Fast Minimum-Norm (Pintor et al. 2021), refined by PGD bisection:
    /// each input's distance to the decision boundary.
    "fmn" => Fmn(fmn::FmnConfig),
    /// The Fast Adaptive Boundary attack (Croce & Hein 2020): each input's
    /// smallest adversarial found by projections onto linearised
    /// boundaries; FAB-T searches the most likely other classes' ones.
    "fab" => Fab(fab::FabConfig),
    /// Carlini–Wagner L2 (Carlini & Wagner 2017): Adam in tanh space under a
    /// binary search over the margin's weight; each input's distance to the
    /// decision boundary, untargeted or targeted.
    "cw" => Cw(cw::CwConfig),
    /// DeepFool (Moosavi-Dezfooli et al. 2016): steps to the nearest
    /// linearised boundary, in L2 or L∞; each input's distance to it.
    "deepfool" => DeepFool(deepfool::DeepFoolConfig),
    /// Earlier attacks of the plan, each run on the inputs still robust: an
    /// input is robust only if every member fails.
    "ensemble" => Ensemble(ensemble::EnsembleConfig),
    /// AutoAttack (Croce & Hein 2020) as an ensemble: `standard` runs
    /// APGD-CE, APGD-T, FAB-T (9 targets each) and Square (5,000 queries);
    /// at L1 ("Mind the box", 2021) APGD-CE with 5 restarts and APGD-T on
    /// 5 targets, both on the 3ε, 2ε, ε schedule, FAB-T-L1 and Square-L1;
    /// `plus` (L∞, L2) adds APGD-DLR and FAB with 5 restarts.
    "autoattack" => AutoAttack(ensemble::EnsembleConfig) read ensemble::EnsembleConfig::autoattack_from_entry,
}

/// The norms, by name.
pub const NORMS: &[(&str, Norm)] = &[("linf", Norm::Linf), ("l2", Norm::L2), ("l1", Norm::L1)];
use crate::model::ops::log_softmax_row;
use crate::model::{Classifier, InputGradient, Objective};
use crate::rng::Rng;
use crate::stats::argmax;

/// The norm an attack's budget is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// Largest absolute pixel change.
    Linf,
    /// Euclidean length of the change.
    L2,
    /// Sum of the absolute pixel changes (sparse perturbations).
    L1,
}

impl Norm {
    /// The norm as the literature writes it: `L∞`, `L2` or `L1`.
    pub fn symbol(self) -> &'static str {
        match self {
            Norm::Linf => "L∞",
            Norm::L2 => "L2",
            Norm::L1 => "L1",
        }
    }

    /// The norm as plans write it (`linf`, `l2`, `l1`).
    pub fn name(self) -> &'static str {
        match self {
            Norm::Linf => "linf",
            Norm::L2 => "l2",
            Norm::L1 => "l1",
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a targeted attack picks each sample's target class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", untagged)]
pub enum Target {
    /// A fixed class for every sample (a sample whose label is that class
    /// can never count as a success).
    Class(u32),
    /// A rule.
    Rule(TargetRule),
}

/// A rule for choosing target classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetRule {
    /// The class with the lowest clean logit.
    LeastLikely,
    /// A uniformly random class other than the label (seeded per sample).
    Random,
}

/// `name`, or `name (targeted)` for a targeted attack: a label for
/// [`AttackMethod::label`].
pub fn targeted_label(name: &str, target: Option<Target>) -> String {
    match target {
        None => name.to_string(),
        Some(_) => format!("{name} (targeted)"),
    }
}

/// One batch to attack, with what an attack needs to be reproducible and
/// independent of how the data was cut into batches.
pub struct AttackBatch<'a> {
    /// Clean inputs, row-major `[N, C, H, W]`.
    pub x: &'a [f32],
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// True labels.
    pub labels: &'a [u32],
    /// Clean logits, one row per sample.
    pub clean_logits: &'a [Vec<f32>],
    /// Each sample's index in the whole dataset.
    pub indices: &'a [usize],
    /// The audit's seed.
    pub seed: u64,
    /// This attack's stream (its position in the plan).
    pub stream: u64,
}

impl AttackBatch<'_> {
    /// Samples in the batch.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// Values per sample.
    pub fn item_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }

    /// The random generator of sample `i` of this batch: keyed by the seed,
    /// the attack and the sample's index in the dataset, so batch size and
    /// order never change a sample's random numbers.
    pub fn sample_rng(&self, i: usize) -> Rng {
        Rng::for_item(self.seed, self.stream, self.indices[i] as u64)
    }
}

/// What an attack returns for a batch.
#[derive(Debug, Clone)]
pub struct AttackOutcome {
    /// The best adversarial input found per sample, `[N, C, H, W]` row-major.
    pub adversarial: Vec<f32>,
    /// Logits at `adversarial`.
    pub logits: Vec<Vec<f32>>,
    /// Whether the attack reached its goal for each sample (misclassified, or
    /// classified as the target).
    pub success: Vec<bool>,
    /// Target class per sample, for targeted attacks.
    pub targets: Option<Vec<u32>>,
    /// Gradient evaluations spent per sample.
    pub gradient_evaluations: usize,
}

/// An attack on a batch.
pub trait Attack: Send + Sync {
    /// Attacks `batch`; every returned point lies in the ε-ball and the valid range.
    fn run(&self, model: &dyn Classifier, batch: &AttackBatch) -> Result<AttackOutcome>;
}

/// `torch.sign`: −1, 0 or 1, and 0 for NaN (Rust's `signum(0.0)` is 1).
pub fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `(linf, l2)` of `a − b`, in f64.
pub fn perturbation_norms(a: &[f32], b: &[f32]) -> (f64, f64) {
    let mut linf = 0f64;
    let mut sq = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (*x as f64 - *y as f64).abs();
        linf = linf.max(d);
        sq += d * d;
    }
    (linf, sq.sqrt())
}

/// `‖a − b‖₁` in f64, summed in order: the figure reports carry and the
/// L1 projection guarantees.
pub fn perturbation_l1(a: &[f32], b: &[f32]) -> f64 {
    let mut sum = 0f64;
    for (x, y) in a.iter().zip(b) {
        sum += (*x as f64 - *y as f64).abs();
    }
    sum
}

/// Refuses a budget in `norm` for an attack that has no step for it
/// (`what`: the attack, `norms`: the ones it has), so that it never runs
/// silently in another norm.
pub fn refuse_norm(e: &mut Entry, budget: &Budget, what: &str, norms: &[Norm]) {
    if budget.norm.is_some_and(|n| !norms.contains(&n)) {
        let listed: Vec<&str> = norms.iter().map(|n| n.name()).collect();
        e.fail(
            "norm",
            format!(
                "{what} has no {} version: use {}",
                budget.norm().symbol(),
                listed.join(" or ")
            ),
        );
    }
}

/// The same refusal for a config read back from a report or built in code.
pub fn check_norm(norm: Norm, what: &str, norms: &[Norm]) -> Result<()> {
    if norms.contains(&norm) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{what} has no {} version (norm = \"{norm}\")",
        norm.symbol()
    )))
}

/// Targets for a batch, or `None` for an untargeted attack.
pub fn choose_targets(
    target: Option<Target>,
    batch: &AttackBatch,
    num_classes: usize,
) -> Result<Option<Vec<u32>>> {
    let Some(target) = target else {
        return Ok(None);
    };
    if num_classes < 2 {
        return Err(Error::Invalid(
            "a targeted attack needs at least 2 classes".into(),
        ));
    }
    let targets = (0..batch.len())
        .map(|i| match target {
            Target::Class(c) => Ok(c),
            Target::Rule(TargetRule::LeastLikely) => {
                let row = &batch.clean_logits[i];
                let mut best = 0;
                for (j, &v) in row.iter().enumerate() {
                    if v < row[best] {
                        best = j;
                    }
                }
                Ok(best as u32)
            }
            Target::Rule(TargetRule::Random) => {
                // Uniform over the classes other than the label; a stream of
                // its own so random starts do not shift it.
                let mut rng = Rng::for_item(
                    batch.seed ^ 0x7461_7267_6574,
                    batch.stream,
                    batch.indices[i] as u64,
                );
                let label = batch.labels[i];
                let pick = rng.below(num_classes as u64 - 1) as u32;
                Ok(if pick >= label { pick + 1 } else { pick })
            }
        })
        .collect::<Result<Vec<u32>>>()?;
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= num_classes) {
        return Err(Error::Invalid(format!(
            "target class {bad} outside the model's {num_classes} classes"
        )));
    }
    Ok(Some(targets))
}

/// The classes of logits `row` from the largest logit down (ties: the
/// lower index first): `[1]` is the most likely other class of a correctly
/// classified input, the first target of APGD-T and FAB-T.
pub fn classes_by_logit(row: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    order
}

/// Whether logits `row` meet the goal: misclassified, or the target wins.
pub fn reached_goal(row: &[f32], label: u32, target: Option<u32>) -> bool {
    match target {
        Some(t) => t != label && argmax(row) == t,
        None => argmax(row) != label,
    }
}

/// The loss an attack ascends at one point: cross-entropy on the label, or
/// minus cross-entropy on the target.
pub fn attack_loss(row: &[f32], label: u32, target: Option<u32>) -> f32 {
    let mut log_p = vec![0f32; row.len()];
    log_softmax_row(row, &mut log_p);
    match target {
        Some(t) => log_p[t as usize],
        None => -log_p[label as usize],
    }
}

/// The best point found per sample: a success beats a failure, and among
/// equals the higher loss wins.
pub struct BestTracker {
    item_len: usize,
    /// Best inputs so far.
    pub adversarial: Vec<f32>,
    /// Logits at them.
    pub logits: Vec<Vec<f32>>,
    /// Whether each best point meets the goal.
    pub success: Vec<bool>,
    loss: Vec<f32>,
}

impl BestTracker {
    /// Starts from the clean inputs, scored with their logits.
    pub fn new(batch: &AttackBatch, targets: Option<&[u32]>) -> Self {
        let n = batch.len();
        let mut t = BestTracker {
            item_len: batch.item_len(),
            adversarial: batch.x.to_vec(),
            logits: batch.clean_logits.to_vec(),
            success: vec![false; n],
            loss: vec![f32::NEG_INFINITY; n],
        };
        for i in 0..n {
            let target = targets.map(|t| t[i]);
            t.success[i] = reached_goal(&batch.clean_logits[i], batch.labels[i], target);
            t.loss[i] = attack_loss(&batch.clean_logits[i], batch.labels[i], target);
        }
        t
    }

    /// Offers the points `x` with their logits, one per batch sample; keeps
    /// the better point per sample.
    pub fn offer(
        &mut self,
        x: &[f32],
        logits: &[Vec<f32>],
        labels: &[u32],
        targets: Option<&[u32]>,
    ) {
        let rows: Vec<usize> = (0..logits.len()).collect();
        self.offer_rows(&rows, x, logits, labels, targets);
    }

    /// Like [`BestTracker::offer`] for a subset: row `r` of `x` and `logits`
    /// is batch sample `rows[r]`; `labels` and `targets` are the batch's.
    pub fn offer_rows(
        &mut self,
        rows: &[usize],
        x: &[f32],
        logits: &[Vec<f32>],
        labels: &[u32],
        targets: Option<&[u32]>,
    ) {
        for (r, (&i, row)) in rows.iter().zip(logits).enumerate() {
            let target = targets.map(|t| t[i]);
            let success = reached_goal(row, labels[i], target);
            let loss = attack_loss(row, labels[i], target);
            let better = (success && !self.success[i])
                || (success == self.success[i] && loss > self.loss[i]);
            if better {
                let n = self.item_len;
                self.adversarial[i * n..(i + 1) * n].copy_from_slice(&x[r * n..(r + 1) * n]);
                self.logits[i] = row.clone();
                self.success[i] = success;
                self.loss[i] = loss;
            }
        }
    }

    /// Offers a minimum-norm attack's points, scored in one forward pass:
    /// `points` holds one item per entry of `rows` (batch rows), and only
    /// those with `keep` set are offered — a point beyond the budget is no
    /// success, and is not returned.
    pub fn offer_kept(
        &mut self,
        model: &dyn Classifier,
        batch: &AttackBatch,
        rows: &[usize],
        points: &[f32],
        keep: &[bool],
        targets: Option<&[u32]>,
    ) -> Result<()> {
        let kept: Vec<usize> = (0..rows.len()).filter(|&r| keep[r]).collect();
        if kept.is_empty() {
            return Ok(());
        }
        let points = gather(points, &kept, self.item_len);
        let kept_rows: Vec<usize> = kept.iter().map(|&r| rows[r]).collect();
        let shape = [kept.len(), batch.shape[1], batch.shape[2], batch.shape[3]];
        let logits = logits_at(model, &points, shape)?;
        self.offer_rows(&kept_rows, &points, &logits, batch.labels, targets);
        Ok(())
    }

    /// Batch rows that have not met the goal yet.
    pub fn unbroken(&self) -> Vec<usize> {
        (0..self.success.len())
            .filter(|&i| !self.success[i])
            .collect()
    }

    /// The tracker's best points as an attack's outcome.
    pub fn into_outcome(
        self,
        targets: Option<Vec<u32>>,
        gradient_evaluations: usize,
    ) -> AttackOutcome {
        AttackOutcome {
            adversarial: self.adversarial,
            logits: self.logits,
            success: self.success,
            targets,
            gradient_evaluations,
        }
    }
}

/// The rows `rows` of a batch of items of `item_len` values.
pub fn gather(values: &[f32], rows: &[usize], item_len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * item_len);
    for &i in rows {
        out.extend_from_slice(&values[i * item_len..(i + 1) * item_len]);
    }
    out
}

/// A batch tensor from row-major values.
pub fn to_tensor(x: &[f32], shape: [usize; 4]) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        x,
        (shape[0], shape[1], shape[2], shape[3]),
        &Device::Cpu,
    )?)
}

/// Judges `outcome`'s points on a randomized model by the verdict draw
/// ([`crate::model::draw::VERDICT_DRAW`]): their logits and success become
/// that draw's, so a point only one attack-step draw misclassified is not
/// counted broken. A deterministic model is left as it is.
pub fn judge_on_verdict_draw(
    model: &dyn Classifier,
    batch: &AttackBatch,
    outcome: &mut AttackOutcome,
) -> Result<()> {
    if !model.is_randomized() || batch.is_empty() {
        return Ok(());
    }
    let t = to_tensor(&outcome.adversarial, batch.shape)?;
    let logits: Vec<Vec<f32>> = model
        .logits_draw(&t, crate::model::draw::VERDICT_DRAW)?
        .to_vec2()?;
    for (i, row) in logits.iter().enumerate() {
        let target = outcome.targets.as_ref().map(|t| t[i]);
        outcome.success[i] = reached_goal(row, batch.labels[i], target);
    }
    outcome.logits = logits;
    Ok(())
}

/// Draws each gradient averages over when `eot_samples` is unwritten: one,
/// no averaging.
pub const DEFAULT_EOT_SAMPLES: usize = 1;

/// Expectation over Transformation (Athalye, Carlini & Wagner 2018, as
/// AutoAttack's `eot_iter`): the input gradient of `objective` averaged
/// over draws `0..eot` of a randomized model. The logits and objective
/// values are draw 0's, what a plain call sees, so an attack's bookkeeping
/// is the same with or without averaging (the reference keeps its last
/// draw's instead). A deterministic model, or `eot ≤ 1`, is one plain call:
/// its draws are all the same.
pub fn eot_input_grad(
    model: &dyn Classifier,
    x: &Tensor,
    objective: Objective,
    eot: usize,
) -> Result<InputGradient> {
    let first = model.input_grad(x, objective)?;
    let draws = eot_draws(model, eot);
    if draws == 1 {
        return Ok(first);
    }
    let mut sum = first.grad.clone();
    for draw in 1..draws {
        sum = (sum + model.input_grad_draw(x, objective, draw as u64)?.grad)?;
    }
    Ok(InputGradient {
        grad: (sum / draws as f64)?,
        ..first
    })
}

/// The gradient evaluations one [`eot_input_grad`] call costs.
pub fn eot_draws(model: &dyn Classifier, eot: usize) -> usize {
    if model.is_randomized() {
        eot.max(1)
    } else {
        1
    }
}

/// Logits, loss values and gradients of the attack loss at `x`: the gradient
/// of cross-entropy on the labels, or on the targets (to be descended),
/// averaged over `eot` draws of a randomized model ([`eot_input_grad`]).
pub fn loss_gradient(
    model: &dyn Classifier,
    x: &[f32],
    shape: [usize; 4],
    labels: &[u32],
    targets: Option<&[u32]>,
    eot: usize,
) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let t = to_tensor(x, shape)?;
    let classes = targets.unwrap_or(labels);
    let InputGradient { logits, grad, .. } =
        eot_input_grad(model, &t, Objective::CrossEntropy(classes), eot)?;
    Ok((logits.to_vec2()?, grad.flatten_all()?.to_vec1()?))
}

/// Logits at `x`.
pub fn logits_at(model: &dyn Classifier, x: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>> {
    Ok(model.logits(&to_tensor(x, shape)?)?.to_vec2()?)
}

/// The largest f32 not above `v` (toward −∞ by one step when needed).
fn next_down(v: f32) -> f32 {
    if v.is_nan() || v == f32::NEG_INFINITY {
        return v;
    }
    if v == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = v.to_bits();
    f32::from_bits(if v > 0.0 { bits - 1 } else { bits + 1 })
}

/// The largest f32 not above `v`.
#[inline(always)]
fn f32_at_most(v: f64) -> f32 {
    let c = v as f32;
    if c as f64 > v {
        next_down(c)
    } else {
        c
    }
}

/// The smallest f32 not below `v`.
fn next_up(v: f32) -> f32 {
    -next_down(-v)
}

/// The Euclidean projection of `y` onto `{δ : ‖δ‖₁ ≤ ε, lower ≤ δ ≤ upper}`
/// (per coordinate `lower ≤ 0 ≤ upper`), in f64.
///
/// Croce & Hein 2021 ("Mind the box", Lemma 3.1; `L1_projection` in
/// `fra31/auto-attack`): the solution is `δᵢ = sign(yᵢ)·min(max(|yᵢ| − λ,
/// 0), uᵢ)`, the soft-thresholded point clipped to the box on yᵢ's side
/// (`uᵢ` = `upperᵢ` or `−lowerᵢ`), with λ = 0 when that already has
/// ‖δ‖₁ ≤ ε and otherwise the λ at which it has ‖δ‖₁ = ε. The reference
/// bisects over the sorted breakpoints; here ‖δ(λ)‖₁, piecewise linear in
/// λ, is walked from breakpoint to breakpoint (`|yᵢ| − uᵢ` where a
/// coordinate leaves its bound, `|yᵢ|` where it reaches 0) and λ solved
/// for exactly in its piece.
pub fn l1_box_projection(y: &[f64], lower: &[f64], upper: &[f64], eps: f64) -> Vec<f64> {
    let eps = eps.max(0.0);
    let cap = |i: usize| {
        if y[i] >= 0.0 {
            upper[i].max(0.0)
        } else {
            (-lower[i]).max(0.0)
        }
    };
    let at = |lambda: f64| -> Vec<f64> {
        (0..y.len())
            .map(|i| y[i].signum() * (y[i].abs() - lambda).max(0.0).min(cap(i)))
            .collect()
    };
    let clipped: f64 = (0..y.len()).map(|i| y[i].abs().min(cap(i))).sum();
    if clipped <= eps {
        return at(0.0);
    }
    // (λ, change in the number of coordinates that shrink as λ grows).
    let mut events: Vec<(f64, i64)> = Vec::with_capacity(2 * y.len());
    for (i, yi) in y.iter().enumerate() {
        let (m, u) = (yi.abs(), cap(i));
        if m > 0.0 && u > 0.0 {
            events.push(((m - u).max(0.0), 1));
            events.push((m, -1));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut lambda, mut norm, mut shrinking) = (0.0f64, clipped, 0i64);
    let mut solved = None;
    for &(at_lambda, change) in &events {
        if at_lambda > lambda && shrinking > 0 {
            let next = norm - shrinking as f64 * (at_lambda - lambda);
            if next <= eps {
                solved = Some(lambda + (norm - eps) / shrinking as f64);
                break;
            }
            norm = next;
        }
        lambda = lambda.max(at_lambda);
        shrinking += change;
    }
    // Past the last breakpoint every coordinate is 0 (only round-off gets here).
    at(solved.unwrap_or(lambda))
}

/// Projects one sample's point `adv` onto the ε-ball around `x` in `norm` and
/// onto the valid range, then corrects float round-off so ‖adv − x‖ ≤ ε holds
/// exactly in f64. L∞ and L2 follow PyTorch's order of operations (clamp δ,
/// then clamp `x + δ`; for L2 that is not the exact projection onto the
/// ball ∩ box, as in torchattacks); L1 is the exact Euclidean projection onto
/// the L1 ball ∩ box ([`l1_box_projection`]), since clipping after an L1
/// projection wastes budget on coordinates the box blocks.
pub fn project(adv: &mut [f32], x: &[f32], norm: Norm, eps: f32, range: (f32, f32)) {
    let (lo, hi) = range;
    match norm {
        Norm::L1 => {
            if eps <= 0.0 {
                for (a, &xi) in adv.iter_mut().zip(x) {
                    *a = xi.clamp(lo, hi);
                }
                return;
            }
            let y: Vec<f64> = adv
                .iter()
                .zip(x)
                .map(|(a, b)| *a as f64 - *b as f64)
                .collect();
            let lower: Vec<f64> = x.iter().map(|&b| lo as f64 - b as f64).collect();
            let upper: Vec<f64> = x.iter().map(|&b| hi as f64 - b as f64).collect();
            let delta = l1_box_projection(&y, &lower, &upper, eps as f64);
            for ((a, &xi), d) in adv.iter_mut().zip(x).zip(&delta) {
                // Round towards x, so no coordinate grows in the rounding.
                let mut v = (xi as f64 + d) as f32;
                if (v as f64 - xi as f64).abs() > d.abs() {
                    v = if v > xi { next_down(v) } else { next_up(v) };
                }
                *a = v.clamp(lo, hi);
            }
            // The f64 sum itself can round above ε: take one ulp off the
            // largest change until it does not.
            let limit = eps as f64;
            let mut guard = 4 * adv.len() + 16;
            while perturbation_l1(adv, x) > limit && guard > 0 {
                guard -= 1;
                let mut worst = 0;
                let mut worst_d = 0f64;
                for (i, (a, b)) in adv.iter().zip(x).enumerate() {
                    let d = (*a as f64 - *b as f64).abs();
                    if d > worst_d {
                        worst = i;
                        worst_d = d;
                    }
                }
                if worst_d == 0.0 {
                    break;
                }
                let v = adv[worst];
                adv[worst] = if v > x[worst] {
                    next_down(v)
                } else {
                    next_up(v)
                };
            }
        }
        Norm::Linf => {
            // The f32 bounds nearest x ± ε that keep |a − x| ≤ ε exactly (in
            // f64): one min and max per coordinate instead of ulp-stepping
            // loops, which kept this hot loop scalar.
            let e = eps as f64;
            for (a, &xi) in adv.iter_mut().zip(x) {
                let d = (*a - xi).clamp(-eps, eps);
                let v = (xi + d).clamp(lo, hi);
                let up = f32_at_most(xi as f64 + e);
                let down = -f32_at_most(-(xi as f64 - e));
                *a = v.min(up).max(down).clamp(lo, hi);
            }
        }
        Norm::L2 => {
            let norm_sq: f32 = adv.iter().zip(x).map(|(a, xi)| (a - xi) * (a - xi)).sum();
            let dn = norm_sq.sqrt();
            let factor = if dn > eps { eps / dn } else { 1.0 };
            for (a, &xi) in adv.iter_mut().zip(x) {
                *a = (xi + (*a - xi) * factor).clamp(lo, hi);
            }
            // Round-off can leave ‖δ‖ a hair above ε: shrink until it is not.
            let mut shrink = 1.0f64;
            while perturbation_norms(adv, x).1 > eps as f64 {
                shrink *= 1.0 - 1e-6;
                for (a, &xi) in adv.iter_mut().zip(x) {
                    *a = ((xi as f64 + (*a as f64 - xi as f64) * shrink) as f32).clamp(lo, hi);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_of_zero_is_zero() {
        assert_eq!(sign(0.0), 0.0);
        assert_eq!(sign(-0.0), 0.0);
        assert_eq!(sign(f32::NAN), 0.0);
        assert_eq!(sign(1e-30), 1.0);
        assert_eq!(sign(-3.0), -1.0);
    }

    #[test]
    fn linf_projection_holds_exactly_despite_round_off() {
        // 0.7 + 0.1 rounds above 0.8 in f32: the classic 0.1000061 > ε report.
        let x = vec![0.7f32, 0.3, 0.95, 0.0];
        let mut adv = vec![0.9f32, 0.1, 1.2, -0.5];
        project(&mut adv, &x, Norm::Linf, 0.1, (0.0, 1.0));
        let (linf, _) = perturbation_norms(&adv, &x);
        assert!(linf <= 0.1f32 as f64, "{linf}");
        assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(adv[2], 1.0);
        assert_eq!(adv[3], 0.0);
    }

    /// The projection by brute force: every pattern of coordinates at 0,
    /// at their box bound or soft-thresholded by a common λ (fixed by
    /// ‖δ‖₁ = ε), plus plain clipping; the feasible candidate nearest `y`.
    fn brute_force_l1_box(y: &[f64], lower: &[f64], upper: &[f64], eps: f64) -> Vec<f64> {
        let n = y.len();
        let cap = |i: usize| if y[i] >= 0.0 { upper[i] } else { -lower[i] };
        let mut candidates: Vec<Vec<f64>> =
            vec![(0..n).map(|i| y[i].clamp(lower[i], upper[i])).collect()];
        for mut code in 0..3usize.pow(n as u32) {
            let mut state = vec![0usize; n];
            for s in state.iter_mut() {
                *s = code % 3;
                code /= 3;
            }
            let free: Vec<usize> = (0..n).filter(|&i| state[i] == 2).collect();
            let fixed: f64 = (0..n).filter(|&i| state[i] == 1).map(cap).sum();
            let lambda = if free.is_empty() {
                0.0
            } else {
                (free.iter().map(|&i| y[i].abs()).sum::<f64>() + fixed - eps) / free.len() as f64
            };
            candidates.push(
                (0..n)
                    .map(|i| match state[i] {
                        0 => 0.0,
                        1 => y[i].signum() * cap(i),
                        _ => y[i].signum() * (y[i].abs() - lambda),
                    })
                    .collect(),
            );
        }
        let feasible = |d: &Vec<f64>| {
            d.iter().map(|v| v.abs()).sum::<f64>() <= eps + 1e-12
                && (0..n).all(|i| d[i] >= lower[i] - 1e-12 && d[i] <= upper[i] + 1e-12)
        };
        let dist = |d: &Vec<f64>| (0..n).map(|i| (d[i] - y[i]).powi(2)).sum::<f64>();
        candidates
            .into_iter()
            .filter(feasible)
            .min_by(|a, b| dist(a).total_cmp(&dist(b)))
            .unwrap()
    }

    #[test]
    fn l1_box_projection_matches_brute_force() {
        let mut rng = Rng::new(3);
        for case in 0..400 {
            let n = 3 + case % 3;
            let x: Vec<f64> = (0..n).map(|_| rng.uniform_f64()).collect();
            let y: Vec<f64> = (0..n).map(|_| 2.0 * rng.normal() as f64).collect();
            let lower: Vec<f64> = x.iter().map(|v| -v).collect();
            let upper: Vec<f64> = x.iter().map(|v| 1.0 - v).collect();
            let eps = [0.0, 0.05, 0.3, 1.0, 2.5, 10.0][case % 6];
            let got = l1_box_projection(&y, &lower, &upper, eps);
            let want = brute_force_l1_box(&y, &lower, &upper, eps);
            for i in 0..n {
                assert!(
                    (got[i] - want[i]).abs() < 1e-9,
                    "case {case}: y {y:?} x {x:?} ε {eps}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn l1_projection_edge_cases_and_exact_budget() {
        let x = vec![0.2f32, 0.9, 0.5, 0.0];
        // Already inside the ball and the box: unchanged.
        let mut adv = vec![0.3f32, 0.8, 0.5, 0.1];
        project(&mut adv, &x, Norm::L1, 1.0, (0.0, 1.0));
        assert_eq!(adv, vec![0.3f32, 0.8, 0.5, 0.1]);
        // ε = 0: the clean point.
        let mut adv = vec![1.0f32, 0.0, 0.0, 1.0];
        project(&mut adv, &x, Norm::L1, 0.0, (0.0, 1.0));
        assert_eq!(adv, x);
        // δ = (0, 0.5, 0, 1) where the box lets the second coordinate grow by
        // 0.1 only. ε = 0.6: min(0.5 − λ, 0.1) + (1 − λ) = 0.6 at λ = 0.45,
        // so δ = (0, 0.05, 0, 0.55) (clipping after an L1 projection would
        // spend budget on the blocked coordinate and stop short of ε).
        let mut adv = vec![0.2f32, 1.4, 0.5, 1.0];
        project(&mut adv, &x, Norm::L1, 0.6, (0.0, 1.0));
        assert!(
            (adv[1] - 0.95).abs() < 1e-6 && (adv[3] - 0.55).abs() < 1e-6,
            "{adv:?}"
        );
        // ε = 0.2: λ = 0.8 > 0.5 leaves only the last coordinate, by 0.2.
        let mut adv = vec![0.2f32, 1.4, 0.5, 1.0];
        project(&mut adv, &x, Norm::L1, 0.2, (0.0, 1.0));
        assert!(adv[1] == 0.9 && (adv[3] - 0.2).abs() < 1e-6, "{adv:?}");
        // Round-off: many coordinates, ‖δ‖₁ ≤ ε exactly in f64 after f32.
        let mut rng = Rng::new(9);
        for eps in [0.1f32, 1.0, 7.3, 12.0] {
            let x: Vec<f32> = (0..3072).map(|_| rng.uniform_f32()).collect();
            let mut adv: Vec<f32> = x.iter().map(|v| v + 0.3 * rng.normal()).collect();
            project(&mut adv, &x, Norm::L1, eps, (0.0, 1.0));
            let l1 = perturbation_l1(&adv, &x);
            assert!(l1 <= eps as f64 && l1 > 0.999 * eps as f64, "{eps}: {l1}");
            assert!(adv.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn l2_projection_scales_into_the_ball() {
        let x = vec![0.5f32; 4];
        let mut adv = vec![1.0f32, 0.0, 0.5, 0.5]; // ‖δ‖ = √0.5
        project(&mut adv, &x, Norm::L2, 0.5, (0.0, 1.0));
        let (_, l2) = perturbation_norms(&adv, &x);
        assert!(l2 <= 0.5 && l2 > 0.4999, "{l2}");
        // Direction kept: δ ∝ (1, −1, 0, 0).
        assert!((adv[0] - 0.5 - (0.5 - adv[1])).abs() < 1e-6 && adv[2] == 0.5);
    }
}
