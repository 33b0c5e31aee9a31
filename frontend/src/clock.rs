//! Placing server times on the page's clock.
//!
//! The page pings with its `performance.now()`; the server answers with its
//! own clock. Assuming the answer was stamped halfway through the round trip,
//! `offset = server_ms - (sent + received) / 2`. The sample with the shortest
//! round trip bounds the error best (by half its round trip), so it is kept.

use protocol::Micros;

/// One ping/pong exchange.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Page clock when the ping left (ms).
    pub sent_ms: f64,
    /// Page clock when the pong arrived (ms).
    pub received_ms: f64,
    /// Server clock in the pong (µs).
    pub server_us: Micros,
}

impl Sample {
    /// Round trip (ms).
    pub fn rtt_ms(&self) -> f64 {
        self.received_ms - self.sent_ms
    }

    /// Server clock minus page clock (ms).
    pub fn offset_ms(&self) -> f64 {
        self.server_us as f64 / 1000.0 - (self.sent_ms + self.received_ms) / 2.0
    }
}

/// The best estimate so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClockSync {
    /// The sample with the shortest round trip, if any.
    pub best: Option<Sample>,
}

impl ClockSync {
    /// Takes a sample into account; nonsense (a negative round trip) is ignored.
    pub fn add(&mut self, sample: Sample) {
        if sample.rtt_ms() < 0.0 {
            return;
        }
        if self.best.is_none_or(|b| sample.rtt_ms() < b.rtt_ms()) {
            self.best = Some(sample);
        }
    }

    /// A server time on the page's clock (ms), once synchronised.
    pub fn to_page_ms(self, server_us: Micros) -> Option<f64> {
        self.best.map(|b| server_us as f64 / 1000.0 - b.offset_ms())
    }

    /// The page time on the server's clock (µs), once synchronised.
    pub fn to_server_us(self, page_ms: f64) -> Option<Micros> {
        self.best
            .map(|b| ((page_ms + b.offset_ms()) * 1000.0).max(0.0) as Micros)
    }

    /// The bound on the error of [`ClockSync::to_page_ms`] (ms): half the best round trip.
    pub fn uncertainty_ms(self) -> Option<f64> {
        self.best.map(|b| b.rtt_ms() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_from_a_symmetric_exchange_is_exact() {
        // Server clock = page clock + 500 ms; 2 ms each way.
        let s = Sample {
            sent_ms: 100.0,
            received_ms: 104.0,
            server_us: 602_000,
        };
        assert_eq!(s.rtt_ms(), 4.0);
        assert_eq!(s.offset_ms(), 500.0);
        let mut sync = ClockSync::default();
        sync.add(s);
        assert_eq!(sync.to_page_ms(1_000_000), Some(500.0));
        assert_eq!(sync.to_server_us(500.0), Some(1_000_000));
        assert_eq!(sync.uncertainty_ms(), Some(2.0));
    }

    #[test]
    fn keeps_the_shortest_round_trip_and_ignores_nonsense() {
        let mut sync = ClockSync::default();
        assert_eq!(
            sync.to_page_ms(5),
            None,
            "no estimate before the first pong"
        );
        sync.add(Sample {
            sent_ms: 0.0,
            received_ms: 10.0,
            server_us: 9_000,
        });
        sync.add(Sample {
            sent_ms: 20.0,
            received_ms: 21.0,
            server_us: 20_700,
        });
        sync.add(Sample {
            sent_ms: 30.0,
            received_ms: 38.0,
            server_us: 40_000,
        });
        sync.add(Sample {
            sent_ms: 50.0,
            received_ms: 49.0,
            server_us: 1,
        });
        let best = sync.best.unwrap();
        assert_eq!(best.rtt_ms(), 1.0);
        assert!((best.offset_ms() - 0.2).abs() < 1e-9);
        assert!(
            sync.uncertainty_ms().unwrap() <= 0.5,
            "within 1 ms on loopback"
        );
    }
}
