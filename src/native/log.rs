//! The `log` crate's records written to Envoy's log (`[dynamic_modules]` id), at the level
//! Envoy runs with.

use super::abi::{self, ModuleBuffer};

struct EnvoyLog;

static LOGGER: EnvoyLog = EnvoyLog;

fn level(l: log::Level) -> u32 {
    match l {
        log::Level::Error => abi::LOG_ERROR,
        log::Level::Warn => abi::LOG_WARN,
        log::Level::Info => abi::LOG_INFO,
        log::Level::Debug => abi::LOG_DEBUG,
        log::Level::Trace => abi::LOG_TRACE,
    }
}

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        abi::callbacks().is_some_and(|cb| {
            // SAFETY: a plain value crosses.
            unsafe { (cb.log_enabled)(level(metadata.level())) }
        })
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Some(cb) = abi::callbacks() else { return };
        let line = record.args().to_string();
        // SAFETY: the buffer is valid for its length during the call; Envoy copies it.
        unsafe { (cb.log)(level(record.level()), ModuleBuffer::of(line.as_bytes())) };
    }

    fn flush(&self) {}
}

/// Routes the `log` crate to Envoy (once per process).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}
