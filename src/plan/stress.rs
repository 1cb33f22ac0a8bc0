//! The `[[stress]]` and `[[equivariance]]` sections of a plan.

use toml::Table;

use crate::entry::Errors;
use crate::error::Error;
use crate::stress::plan::{EquivarianceSpec, StressSpec};

/// Reads the `stress` and `equivariance` arrays of the plan's top-level table.
pub(super) fn parse(
    top: &mut Table,
    errors: &mut Errors,
) -> (Vec<StressSpec>, Vec<EquivarianceSpec>) {
    let origin = errors.origin().to_string();
    match crate::stress::plan::parse(top, &origin) {
        Ok(v) => v,
        Err(Error::Plan { message, .. }) => {
            errors.push(message);
            (Vec::new(), Vec::new())
        }
        Err(other) => {
            errors.push(other.to_string());
            (Vec::new(), Vec::new())
        }
    }
}
