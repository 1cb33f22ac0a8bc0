//! AutoAttack at L1 as the reference sets it (`fra31/auto-attack`,
//! `autoattack.py`, `set_version('standard')` with `norm='L1'`): APGD-CE
//! with `use_largereps` and 5 restarts, APGD-T with `use_largereps` on 5
//! target classes (1 restart), FAB-T on 9 (1 restart), Square with 5,000
//! queries, `p_init` 0.8, 1 restart and `resc_schedule=False`; 100
//! iterations for the APGDs and FAB. A plan entry reads as those members,
//! `plus` is refused at L1 by its `version`, and on the shipped digits the
//! ensemble is at least as strong as each member alone, every point within
//! the L1 ball and the range.

use xai_audit::attack::apgd::{ApgdConfig, ApgdLoss};
use xai_audit::attack::ensemble::{AutoAttackVersion, EnsembleConfig};
use xai_audit::attack::fab::FabConfig;
use xai_audit::attack::square::SquareConfig;
use xai_audit::attack::{AttackConfig, AttackSpec, Norm};
use xai_audit::audit::run::run_audit;
use xai_audit::plan::Plan;
use xai_audit::progress::NoSink;

use super::attacks::{plan, shipped_cnn_and_digits};

fn members(spec: &AttackSpec) -> (ApgdConfig, ApgdConfig, FabConfig, SquareConfig) {
    let names: Vec<&str> = spec.members().iter().map(|m| m.name.as_str()).collect();
    let base = &spec.name;
    assert_eq!(
        names,
        [
            format!("{base}/apgd-ce"),
            format!("{base}/apgd-t"),
            format!("{base}/fab-t"),
            format!("{base}/square"),
        ]
    );
    match spec
        .members()
        .iter()
        .map(|m| &m.config)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [AttackConfig::Apgd(ce), AttackConfig::Apgd(t), AttackConfig::Fab(fab), AttackConfig::Square(square)] => {
            (ce.clone(), t.clone(), fab.clone(), square.clone())
        }
        other => panic!("not AutoAttack's members: {other:?}"),
    }
}

#[test]
fn an_l1_autoattack_entry_is_the_reference_standard_version() {
    let plan = Plan::from_toml(
        "[[attack]]\nname = \"aa\"\nkind = \"autoattack\"\nnorm = \"l1\"\neps = 12\n",
        "p.toml",
    )
    .unwrap();
    let aa = &plan.attacks[0];
    assert_eq!((aa.norm(), aa.eps()), (Norm::L1, Some(12.0)));
    assert!(aa.is_autoattack());
    assert_eq!(
        aa.component_labels(),
        ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    );
    let (ce, t, fab, square) = members(aa);
    for c in [&ce, &t] {
        assert_eq!((c.norm, c.eps, c.steps), (Norm::L1, 12.0, 100));
        assert!(c.use_largereps, "{c:?}");
    }
    assert_eq!(
        (ce.loss, ce.restarts, ce.target_classes),
        (ApgdLoss::Ce, 5, None)
    );
    assert_eq!(
        (t.loss, t.restarts, t.target_classes),
        (ApgdLoss::Dlr, 1, Some(5))
    );
    assert_eq!(
        (
            fab.norm,
            fab.eps,
            fab.steps,
            fab.restarts,
            fab.target_classes
        ),
        (Norm::L1, Some(12.0), 100, 1, Some(9))
    );
    assert_eq!(
        (fab.alpha_max, fab.eta, fab.beta),
        (0.1, 1.05, 0.9),
        "fab_pt.py's defaults"
    );
    assert_eq!(
        (
            square.norm,
            square.eps,
            square.queries,
            square.p_init,
            square.restarts
        ),
        (Norm::L1, 12.0, 5000, 0.8, 1)
    );
    assert!(!square.rescale_schedule, "AutoAttack's resc_schedule=False");
    // What runs is what the plan says.
    let built = (ce.build(), t.build(), square.build());
    assert_eq!(
        (built.0.restarts, built.0.use_largereps, built.0.steps),
        (5, true, 100)
    );
    assert_eq!(
        (built.1.target_classes, built.1.use_largereps),
        (Some(5), true)
    );
    assert_eq!(
        (built.2.norm, built.2.queries, built.2.rescale_schedule),
        (Norm::L1, 5000, false)
    );
    aa.build().unwrap();

    // At L∞ the standard version keeps its settings.
    let linf = EnsembleConfig::autoattack("l", Norm::Linf, 0.3);
    let linf = AttackSpec::new("l", AttackConfig::AutoAttack(linf));
    let (ce, t, fab, square) = members(&linf);
    assert_eq!((ce.restarts, ce.use_largereps), (1, false));
    assert_eq!((t.target_classes, t.use_largereps), (Some(9), false));
    assert_eq!(fab.target_classes, Some(9));
    // The original's Square runs unscaled at every norm (torchattacks'
    // AutoAttack rescales it).
    assert_eq!((square.queries, square.rescale_schedule), (5000, false));
}

#[test]
fn plus_at_l1_is_refused_by_its_version() {
    let err = Plan::from_toml(
        "[[attack]]\nname = \"aa\"\nkind = \"autoattack\"\nnorm = \"l1\"\neps = 12\nversion = \"plus\"\n",
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"aa\"") && err.contains("version") && err.contains("L1"),
        "{err}"
    );
    // Built in code or read back from a report: refused as well.
    let config = EnsembleConfig::autoattack_version("aa", Norm::L1, 12.0, AutoAttackVersion::Plus);
    let err = AttackSpec::new("aa", AttackConfig::AutoAttack(config))
        .build()
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("attack \"aa\"") && err.contains("plus") && err.contains("L1"),
        "{err}"
    );
    // L∞ plus still reads.
    Plan::from_toml(
        "[[attack]]\nname = \"aa\"\nkind = \"autoattack\"\neps = 0.3\nversion = \"plus\"\n",
        "p.toml",
    )
    .unwrap();
}

#[test]
fn l1_autoattack_on_digits_is_at_least_as_strong_as_each_member() {
    let (model, data) = shipped_cnn_and_digits(20);
    let eps = 8.0;
    let aa = EnsembleConfig::autoattack("aa", Norm::L1, eps);
    let mut attacks: Vec<AttackSpec> = aa
        .members
        .iter()
        .map(|m| AttackSpec::new(m.name.replace("aa/", ""), m.config.clone()))
        .collect();
    attacks.push(AttackSpec::new("aa", AttackConfig::AutoAttack(aa)));
    let results = run_audit(&model, &data, &plan(attacks, 20), &mut NoSink).unwrap();
    let robust = |k: usize| {
        results.attacks[k]
            .predictions
            .predicted
            .iter()
            .zip(&data.labels)
            .filter(|(p, y)| p == y)
            .count()
    };
    let ensemble = robust(4);
    for k in 0..4 {
        assert!(
            ensemble <= robust(k),
            "AutoAttack {ensemble} robust, {} alone {}",
            results.attacks[k].spec.name,
            robust(k)
        );
    }
    // Mid-range at this budget: the comparison means something.
    let clean = robust_clean(&results, &data.labels);
    assert!(ensemble < clean, "AutoAttack-L1 broke nothing");
    for a in &results.attacks {
        for (i, n) in a.l1.iter().enumerate() {
            assert!(
                *n <= eps as f32 as f64,
                "{}: input {i} has ‖δ‖₁ = {n} > ε",
                a.spec.name
            );
        }
        assert!(
            a.adversarial.iter().all(|v| (0.0..=1.0).contains(v)),
            "{} leaves [0, 1]",
            a.spec.name
        );
    }
}

fn robust_clean(results: &xai_audit::audit::run::AuditResults, labels: &[u32]) -> usize {
    results
        .clean
        .predictions
        .predicted
        .iter()
        .zip(labels)
        .filter(|(p, y)| p == y)
        .count()
}
