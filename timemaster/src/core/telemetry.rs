//! The atomic clock's telemetry answer: the reply to the `!^` query is one line,
//! `<status>,<alarm hex>,<serial>,…` (`docs/RATIONALE.md` §5). Only the first two fields are used.

use thiserror::Error;

/// Status code and alarm bits from one telemetry line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Telemetry {
    /// The status code (0 = locked and healthy; the meaning of others is the device's).
    pub status: u8,
    /// The alarm bit field.
    pub alarm: u16,
}

/// Why a telemetry line was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TelemetryError {
    /// The line has no status field or no alarm field.
    #[error("missing {0} field")]
    Missing(&'static str),
    /// The status field is not a number from 0 to 255.
    #[error("status field {0:?} is not a number from 0 to 255")]
    Status(String),
    /// The alarm field is not a 16-bit hexadecimal number.
    #[error("alarm field {0:?} is not a 16-bit hexadecimal number")]
    Alarm(String),
}

/// Parses one telemetry line (surrounding white space ignored).
pub fn parse(line: &str) -> Result<Telemetry, TelemetryError> {
    let mut f = line.trim().split(',');
    let status = f.next().filter(|s| !s.is_empty());
    let status = status.ok_or(TelemetryError::Missing("status"))?.trim();
    let status = status
        .parse()
        .map_err(|_| TelemetryError::Status(status.into()))?;
    let alarm = f.next().ok_or(TelemetryError::Missing("alarm"))?.trim();
    let alarm = u16::from_str_radix(alarm.trim_start_matches("0x"), 16)
        .map_err(|_| TelemetryError::Alarm(alarm.into()))?;
    Ok(Telemetry { status, alarm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parsing() {
        let t = |status, alarm| Ok(Telemetry { status, alarm });
        assert_eq!(parse("0,0x0000,1234CS00001,0x0000"), t(0, 0));
        assert_eq!(parse("9,0x0010,x"), t(9, 16));
        assert_eq!(
            parse("garbage"),
            Err(TelemetryError::Status("garbage".into()))
        );
        assert_eq!(parse(""), Err(TelemetryError::Missing("status")));
        assert_eq!(parse("3"), Err(TelemetryError::Missing("alarm")));
        assert_eq!(parse("3,0xZZ"), Err(TelemetryError::Alarm("0xZZ".into())));
        assert_eq!(parse("300,0x0"), Err(TelemetryError::Status("300".into())));
    }
}
