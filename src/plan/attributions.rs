//! The `[[attribution]]` section of a plan.

use toml::Table;

use super::{AttackSpec, ModelFacts};
use crate::attribution::plan::AttributionSpec;
use crate::entry::Errors;
use crate::error::Error;

/// Reads the `attribution` array of the plan's top-level table; `attacks`
/// are the plan's attacks, which `on` may name.
pub(super) fn parse(
    top: &mut Table,
    attacks: &[AttackSpec],
    errors: &mut Errors,
) -> Vec<AttributionSpec> {
    let origin = errors.origin().to_string();
    match crate::attribution::plan::parse_attributions(top.remove("attribution"), &origin, attacks)
    {
        Ok(v) => v,
        Err(Error::Plan { message, .. }) => {
            errors.push(message);
            Vec::new()
        }
        Err(other) => {
            errors.push(other.to_string());
            Vec::new()
        }
    }
}

/// Completes the attribution entries against the model: noise scales left
/// unset follow the range, a fixed class must exist, Grad-CAM's layer and
/// occlusion's window must fit.
pub(super) fn resolve(
    attributions: &mut [AttributionSpec],
    model: &ModelFacts,
    errors: &mut Errors,
    _warnings: &mut Vec<String>,
) {
    let origin = errors.origin().to_string();
    match crate::attribution::plan::check_against(attributions, model.spec, &origin) {
        Ok(()) => {}
        Err(Error::Plan { message, .. }) => errors.push(message),
        Err(other) => errors.push(other.to_string()),
    }
}
