//! Windows: which messages are processed together. Per message, by count (n messages), or by time (Spark
//! Streaming's batch interval: window i covers `[start + i T, start + (i + 1) T)` on the injected clock). A
//! time window closes when the clock passes its end, whether or not a message arrives, so the scheduling
//! delay (processing start minus window end) is measured honestly.

use std::time::Duration;

/// How messages are grouped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowPolicy {
    PerMessage,
    Count(usize),
    Time(Duration),
}

impl WindowPolicy {
    /// Parse `message`, `count:N` or `time:SECONDS`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "message" => Ok(WindowPolicy::PerMessage),
            Some(("count", n)) => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(WindowPolicy::Count(n)),
                _ => Err(format!("window `{s}`: count must be a positive integer")),
            },
            Some(("time", t)) => match t.parse::<f64>() {
                Ok(t)
                    if t.is_finite()
                        && t > 0.0
                        && t <= pilot_core::contract::config::MAX_SECONDS =>
                {
                    Ok(WindowPolicy::Time(Duration::from_secs_f64(t)))
                }
                _ => Err(format!(
                    "window `{s}`: time must be positive seconds, at most {:e}",
                    pilot_core::contract::config::MAX_SECONDS
                )),
            },
            _ => Err(format!(
                "window `{s}` is unknown (message, count:N, time:SECONDS)"
            )),
        }
    }
}

impl std::fmt::Display for WindowPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowPolicy::PerMessage => write!(f, "message"),
            WindowPolicy::Count(n) => write!(f, "count:{n}"),
            WindowPolicy::Time(d) => write!(f, "time:{}", d.as_secs_f64()),
        }
    }
}

/// Tracks the open window.
#[derive(Debug, Clone)]
pub struct Windower {
    policy: WindowPolicy,
    start_ns: u64,
    index: u64,
    messages: usize,
}

/// A window ready to process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closed {
    /// When the window ended (ns since epoch): its last message's arrival, or its time boundary.
    pub end_ns: u64,
    pub messages: usize,
}

impl Windower {
    pub fn new(policy: WindowPolicy, start_ns: u64) -> Self {
        Windower {
            policy,
            start_ns,
            index: 0,
            messages: 0,
        }
    }

    /// A message arrived at `now_ns` and joined the window; `Some` when that completes it.
    pub fn arrived(&mut self, now_ns: u64) -> Option<Closed> {
        self.messages += 1;
        match self.policy {
            WindowPolicy::PerMessage => Some(self.close(now_ns)),
            WindowPolicy::Count(n) if self.messages >= n => Some(self.close(now_ns)),
            _ => None,
        }
    }

    /// The clock moved to `now_ns`: `Some` when a time window ended (possibly empty).
    pub fn tick(&mut self, now_ns: u64) -> Option<Closed> {
        if let WindowPolicy::Time(t) = self.policy {
            let end = self.start_ns + (self.index + 1) * t.as_nanos() as u64;
            if now_ns >= end {
                return Some(self.close(end));
            }
        }
        None
    }

    /// End of the run: the partial window, if it holds messages.
    pub fn flush(&mut self, now_ns: u64) -> Option<Closed> {
        (self.messages > 0).then(|| self.close(now_ns))
    }

    fn close(&mut self, end_ns: u64) -> Closed {
        let c = Closed {
            end_ns,
            messages: self.messages,
        };
        self.messages = 0;
        self.index += 1;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_policies() {
        assert_eq!(WindowPolicy::parse("message"), Ok(WindowPolicy::PerMessage));
        assert_eq!(WindowPolicy::parse("count:5"), Ok(WindowPolicy::Count(5)));
        assert_eq!(
            WindowPolicy::parse("time:0.2"),
            Ok(WindowPolicy::Time(Duration::from_millis(200)))
        );
        assert!(WindowPolicy::parse("count:0").is_err());
        assert!(WindowPolicy::parse("time:-1").is_err());
        assert!(WindowPolicy::parse("hourly").is_err());
        assert_eq!(WindowPolicy::Count(5).to_string(), "count:5");
    }

    #[test]
    fn count_windows_close_every_n_messages() {
        let mut w = Windower::new(WindowPolicy::Count(3), 0);
        assert_eq!(w.arrived(10), None);
        assert_eq!(w.arrived(20), None);
        assert_eq!(
            w.arrived(30),
            Some(Closed {
                end_ns: 30,
                messages: 3
            })
        );
        assert_eq!(w.arrived(40), None);
        assert_eq!(
            w.tick(1_000_000_000_000),
            None,
            "count windows ignore the clock"
        );
        assert_eq!(
            w.flush(50),
            Some(Closed {
                end_ns: 50,
                messages: 1
            })
        );
        assert_eq!(w.flush(60), None);
    }

    #[test]
    fn time_windows_close_on_the_injected_clock_even_when_empty() {
        let s = 1_000_000_000;
        let mut w = Windower::new(WindowPolicy::Time(Duration::from_millis(200)), s);
        assert_eq!(w.arrived(s + 10_000_000), None);
        assert_eq!(w.tick(s + 199_999_999), None);
        assert_eq!(
            w.tick(s + 250_000_000),
            Some(Closed {
                end_ns: s + 200_000_000,
                messages: 1
            })
        );
        // Nothing arrives for the next window: it still closes, empty, at its boundary.
        assert_eq!(
            w.tick(s + 400_000_000),
            Some(Closed {
                end_ns: s + 400_000_000,
                messages: 0
            })
        );
        assert_eq!(w.arrived(s + 450_000_000), None);
        assert_eq!(w.arrived(s + 460_000_000), None);
        assert_eq!(
            w.tick(s + 700_000_000),
            Some(Closed {
                end_ns: s + 600_000_000,
                messages: 2
            })
        );
    }

    #[test]
    fn per_message_windows() {
        let mut w = Windower::new(WindowPolicy::PerMessage, 0);
        assert_eq!(
            w.arrived(5),
            Some(Closed {
                end_ns: 5,
                messages: 1
            })
        );
    }
}
