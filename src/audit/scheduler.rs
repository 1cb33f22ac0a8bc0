//! Which shard this process is, read from the variables a scheduler sets:
//! a task of a Slurm job array (`SLURM_ARRAY_TASK_ID` with the array's
//! `SLURM_ARRAY_TASK_MIN`, `_MAX`, `_STEP` and `_COUNT`) or a pod of a
//! Kubernetes Indexed Job (its 0-based `JOB_COMPLETION_INDEX`, with the
//! shard count given, since Kubernetes sets no variable for it).
//!
//! The variables come in as a map, so the binary reads the environment and
//! the rules are tested here without touching it. Shards must number
//! 1..=N without gaps (a merge wants every one of them), so a Slurm array
//! that is not one contiguous range is refused rather than guessed at, and
//! so are variables that contradict each other.

use std::collections::BTreeMap;

use crate::error::{Error, Opt, Remedy, Result};

/// The Slurm job array's variables, all five set in each of its tasks.
pub const SLURM_VARIABLES: [&str; 5] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
];

/// A Kubernetes Indexed Job's 0-based index of the pod's completion.
pub const KUBERNETES_INDEX: &str = "JOB_COMPLETION_INDEX";

/// Every variable [`shard_from_scheduler`] reads.
pub const VARIABLES: [&str; 6] = [
    SLURM_VARIABLES[0],
    SLURM_VARIABLES[1],
    SLURM_VARIABLES[2],
    SLURM_VARIABLES[3],
    SLURM_VARIABLES[4],
    KUBERNETES_INDEX,
];

/// The shard a scheduler's variables name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// `K`, 1-based.
    pub index: usize,
    /// `N`.
    pub count: usize,
    /// The variables it was read from, for messages
    /// (`SLURM_ARRAY_TASK_ID=5 of the array 1-7:2`).
    pub source: String,
}

/// Shard `K` of `N` from the scheduler's variables `vars` (name → value;
/// an empty value counts as unset) and the shard count `shards`, which a
/// Kubernetes Indexed Job needs and a Slurm array must agree with.
///
/// A Slurm task is shard `(ID − MIN) / STEP + 1` of `COUNT`; a Kubernetes
/// pod is shard `JOB_COMPLETION_INDEX + 1` of `shards`. When both are set
/// they must name the same shard. Every refusal names the variables.
pub fn shard_from_scheduler(
    vars: &BTreeMap<String, String>,
    shards: Option<usize>,
) -> Result<Assigned> {
    if shards == Some(0) {
        return Err(Error::bad_option(Opt::Shards, "must be at least 1"));
    }
    let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let slurm = if SLURM_VARIABLES.iter().any(|v| get(v).is_some()) {
        Some(slurm(&get)?)
    } else {
        None
    };
    let kubernetes = match get(KUBERNETES_INDEX) {
        Some(value) => Some(kubernetes(
            value,
            shards.or(slurm.as_ref().map(|s| s.count)),
        )?),
        None => None,
    };
    match (slurm, kubernetes) {
        (None, None) => Err(Error::Scheduler(format!(
            "neither SLURM_ARRAY_TASK_ID (a task of a Slurm job array) nor {KUBERNETES_INDEX} \
             (a pod of a Kubernetes Indexed Job) is set"
        ))
        .remedied(Remedy::NameShard)),
        (Some(s), None) => match shards {
            Some(n) if n != s.count => Err(Error::bad_option(
                Opt::Shards,
                format!(
                    "is {n}, but SLURM_ARRAY_TASK_COUNT={}: the Slurm array has {} tasks",
                    s.count, s.count
                ),
            )),
            _ => Ok(s),
        },
        (None, Some(k)) => Ok(k),
        (Some(s), Some(k)) if (s.index, s.count) == (k.index, k.count) => Ok(s),
        (Some(s), Some(k)) => Err(Error::Scheduler(format!(
            "the Slurm and Kubernetes variables disagree: {} makes this shard {} of {}, \
             {} makes it shard {} of {}",
            s.source, s.index, s.count, k.source, k.index, k.count
        ))),
    }
}

/// The shard of a Slurm array task: all five variables set, the array one
/// contiguous range (`A-B` or `A-B:S`), the task one of its indices.
fn slurm<'a>(get: &dyn Fn(&str) -> Option<&'a str>) -> Result<Assigned> {
    let missing: Vec<&str> = SLURM_VARIABLES
        .iter()
        .copied()
        .filter(|v| get(v).is_none())
        .collect();
    if !missing.is_empty() {
        let set: Vec<&str> = SLURM_VARIABLES
            .iter()
            .copied()
            .filter(|v| get(v).is_some())
            .collect();
        return Err(Error::Scheduler(format!(
            "{} {} set but not {} (a task of a Slurm job array has all five)",
            crate::util::list_and(&set),
            if set.len() == 1 { "is" } else { "are" },
            crate::util::list_and(&missing)
        )));
    }
    let number = |name: &str| -> Result<usize> {
        let value = get(name).unwrap_or_default();
        value
            .parse()
            .map_err(|_| Error::Scheduler(format!("{name}={value} is not a whole number")))
    };
    let [id, min, max, step, count] = [
        number(SLURM_VARIABLES[0])?,
        number(SLURM_VARIABLES[1])?,
        number(SLURM_VARIABLES[2])?,
        number(SLURM_VARIABLES[3])?,
        number(SLURM_VARIABLES[4])?,
    ];
    if step == 0 || min > max {
        return Err(Error::Scheduler(format!(
            "SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_MAX={max} and \
             SLURM_ARRAY_TASK_STEP={step} describe no array"
        )));
    }
    let spanned = (max - min) / step + 1;
    if (max - min) % step != 0 || spanned != count {
        return Err(Error::Scheduler(format!(
            "the Slurm array is not contiguous: SLURM_ARRAY_TASK_MIN={min}, \
             SLURM_ARRAY_TASK_MAX={max} and SLURM_ARRAY_TASK_STEP={step} span {spanned} \
             indices but SLURM_ARRAY_TASK_COUNT={count}; shards need an array written as one \
             range (`0-3`, or `1-7:2`)"
        )));
    }
    if id < min || id > max || (id - min) % step != 0 {
        return Err(Error::Scheduler(format!(
            "SLURM_ARRAY_TASK_ID={id} is not an index of the array {min}-{max}:{step} \
             (SLURM_ARRAY_TASK_MIN, _MAX and _STEP)"
        )));
    }
    Ok(Assigned {
        index: (id - min) / step + 1,
        count,
        source: format!("SLURM_ARRAY_TASK_ID={id} of the array {min}-{max}:{step}"),
    })
}

/// The shard of a Kubernetes Indexed Job's pod: index + 1 of `shards`.
fn kubernetes(value: &str, shards: Option<usize>) -> Result<Assigned> {
    let index: usize = value.parse().map_err(|_| {
        Error::Scheduler(format!("{KUBERNETES_INDEX}={value} is not a whole number"))
    })?;
    let Some(count) = shards else {
        return Err(Error::Scheduler(format!(
            "{KUBERNETES_INDEX}={index} (a pod of a Kubernetes Indexed Job) says which shard \
             this is but not how many there are"
        ))
        .remedied(Remedy::GiveShardCount));
    };
    if index >= count {
        return Err(Error::bad_option(
            Opt::Shards,
            format!(
                "is {count}, but {KUBERNETES_INDEX}={index}: the pods of an Indexed Job of \
                 {count} completions are numbered 0 to {}",
                count - 1
            ),
        ));
    }
    Ok(Assigned {
        index: index + 1,
        count,
        source: format!("{KUBERNETES_INDEX}={index}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The variables Slurm sets in the task `id` of `--array=min-max:step`.
    fn slurm_task(id: usize, min: usize, max: usize, step: usize) -> BTreeMap<String, String> {
        let count = ((max - min) / step + 1).to_string();
        let (id, min, max, step) = (
            id.to_string(),
            min.to_string(),
            max.to_string(),
            step.to_string(),
        );
        vars(&[
            ("SLURM_ARRAY_TASK_ID", &id),
            ("SLURM_ARRAY_TASK_MIN", &min),
            ("SLURM_ARRAY_TASK_MAX", &max),
            ("SLURM_ARRAY_TASK_STEP", &step),
            ("SLURM_ARRAY_TASK_COUNT", &count),
            ("SLURM_ARRAY_JOB_ID", "4242"),
        ])
    }

    fn shard(vars: &BTreeMap<String, String>, shards: Option<usize>) -> (usize, usize) {
        let a = shard_from_scheduler(vars, shards).unwrap();
        (a.index, a.count)
    }

    fn refusal(vars: &BTreeMap<String, String>, shards: Option<usize>) -> String {
        shard_from_scheduler(vars, shards).unwrap_err().to_string()
    }

    #[test]
    fn a_contiguous_slurm_array_numbers_its_tasks_from_one() {
        for id in 0..4 {
            assert_eq!(shard(&slurm_task(id, 0, 3, 1), None), (id + 1, 4));
        }
        // `--array=1-7:2`: IDs 1, 3, 5, 7 are shards 1 to 4 of 4.
        for (id, k) in [(1, 1), (3, 2), (5, 3), (7, 4)] {
            assert_eq!(shard(&slurm_task(id, 1, 7, 2), None), (k, 4));
        }
        // `--array=5-5`: one task.
        assert_eq!(shard(&slurm_task(5, 5, 5, 1), None), (1, 1));
        // A shard count given must agree with the array's.
        assert_eq!(shard(&slurm_task(3, 1, 7, 2), Some(4)), (2, 4));
        let e = refusal(&slurm_task(3, 1, 7, 2), Some(3));
        assert!(
            e.contains("is 3") && e.contains("SLURM_ARRAY_TASK_COUNT=4"),
            "{e}"
        );
        let a = shard_from_scheduler(&slurm_task(5, 1, 7, 2), None).unwrap();
        assert_eq!(a.source, "SLURM_ARRAY_TASK_ID=5 of the array 1-7:2");
    }

    #[test]
    fn a_slurm_array_with_gaps_is_refused() {
        // `--array=1,3,8`: three tasks, but MIN..MAX spans eight indices.
        let mut v = slurm_task(3, 1, 8, 1);
        v.insert("SLURM_ARRAY_TASK_COUNT".into(), "3".into());
        let e = refusal(&v, None);
        assert!(
            e.contains("not contiguous")
                && e.contains("SLURM_ARRAY_TASK_MIN=1")
                && e.contains("SLURM_ARRAY_TASK_MAX=8")
                && e.contains("SLURM_ARRAY_TASK_COUNT=3"),
            "{e}"
        );
        // A step that does not divide the span.
        assert!(refusal(&slurm_task(1, 1, 8, 2), None).contains("not contiguous"));
        // An ID off the array's step.
        let e = refusal(&slurm_task(4, 1, 7, 2), None);
        assert!(e.contains("SLURM_ARRAY_TASK_ID=4 is not an index"), "{e}");
        let mut v = slurm_task(1, 0, 3, 1);
        v.insert("SLURM_ARRAY_TASK_STEP".into(), "0".into());
        assert!(refusal(&v, None).contains("SLURM_ARRAY_TASK_STEP=0"));
    }

    #[test]
    fn slurm_variables_half_set_or_not_numbers_are_named() {
        let e = refusal(&vars(&[("SLURM_ARRAY_TASK_ID", "2")]), None);
        assert!(
            e.contains("SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_MIN")
                && e.contains("SLURM_ARRAY_TASK_COUNT"),
            "{e}"
        );
        let mut v = slurm_task(1, 0, 3, 1);
        v.insert("SLURM_ARRAY_TASK_MAX".into(), "three".into());
        assert!(refusal(&v, None).contains("SLURM_ARRAY_TASK_MAX=three is not a whole number"));
    }

    #[test]
    fn no_variable_set_names_both_schedulers() {
        let e = shard_from_scheduler(&vars(&[("HOSTNAME", "n1")]), Some(4)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("SLURM_ARRAY_TASK_ID") && text.contains("JOB_COMPLETION_INDEX"),
            "{text}"
        );
        assert!(matches!(
            e,
            Error::Remedied {
                remedy: Remedy::NameShard,
                ..
            }
        ));
        // Set but empty counts as unset.
        let e = refusal(&vars(&[("JOB_COMPLETION_INDEX", "")]), Some(4));
        assert!(e.contains("neither"), "{e}");
    }

    #[test]
    fn a_kubernetes_index_needs_the_shard_count_and_fits_in_it() {
        for index in 0..3 {
            let v = vars(&[("JOB_COMPLETION_INDEX", &index.to_string())]);
            assert_eq!(shard(&v, Some(3)), (index + 1, 3));
        }
        let v = vars(&[("JOB_COMPLETION_INDEX", "2")]);
        let e = shard_from_scheduler(&v, None).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Remedied {
                    remedy: Remedy::GiveShardCount,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("JOB_COMPLETION_INDEX=2"), "{e}");
        let e = shard_from_scheduler(&vars(&[("JOB_COMPLETION_INDEX", "3")]), Some(3)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::BadOption {
                    option: Opt::Shards,
                    ..
                }
            ) && e.to_string().contains("JOB_COMPLETION_INDEX=3")
                && e.to_string().contains("0 to 2"),
            "{e}"
        );
        assert!(refusal(&vars(&[("JOB_COMPLETION_INDEX", "-1")]), Some(3))
            .contains("JOB_COMPLETION_INDEX=-1 is not a whole number"));
        assert!(refusal(&v, Some(0)).contains("at least 1"));
    }

    #[test]
    fn slurm_and_kubernetes_together_must_agree() {
        let mut v = slurm_task(1, 0, 3, 1);
        v.insert("JOB_COMPLETION_INDEX".into(), "1".into());
        // They agree (the Slurm array gives the count).
        assert_eq!(shard(&v, None), (2, 4));
        v.insert("JOB_COMPLETION_INDEX".into(), "2".into());
        let e = refusal(&v, None);
        assert!(
            e.contains("disagree")
                && e.contains("SLURM_ARRAY_TASK_ID=1 of the array 0-3:1 makes this shard 2 of 4")
                && e.contains("JOB_COMPLETION_INDEX=2 makes it shard 3 of 4"),
            "{e}"
        );
        // A count that fits the pod's index but not the array.
        v.insert("JOB_COMPLETION_INDEX".into(), "1".into());
        assert!(refusal(&v, Some(5)).contains("disagree"));
    }
}
