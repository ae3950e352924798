//! Shared data through the host: the [`SharedCells`] the core's cross-worker counters use.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::shared::{CellError, SharedCells};

/// Envoy's shared data for this VM id (common to every worker and both filter roles).
pub struct HostCells;

impl SharedCells for HostCells {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), CellError> {
        match hostcalls::get_shared_data(key) {
            Ok((value, cas)) => Ok((value, cas.unwrap_or(0))),
            Err(Status::NotFound) => Ok((None, 0)),
            Err(status) => Err(CellError::Host(format!(
                "get_shared_data({key}) failed: {status:?}"
            ))),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CellError> {
        let cas = (cas != 0).then_some(cas);
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(CellError::CasMismatch),
            Err(status) => Err(CellError::Host(format!(
                "set_shared_data({key}) failed: {status:?}"
            ))),
        }
    }
}
