//! Service addresses on the command line: `TYPE:INSTANCE` (one instance) and
//! `TYPE:LOWER:UPPER` (a range), as `utipc ping --to`, `echo --bind` and `send --to` take them.

use std::fmt;
use std::str::FromStr;

/// A service address or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceSpec {
    /// Service type.
    pub service_type: u32,
    /// Lower bound (the instance for a single address).
    pub lower: u32,
    /// Upper bound (equal to `lower` for a single address).
    pub upper: u32,
}

impl ServiceSpec {
    /// Whether this names one instance rather than a range.
    pub fn is_single(&self) -> bool {
        self.lower == self.upper
    }
}

impl FromStr for ServiceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: expected TYPE:INSTANCE or TYPE:LOWER:UPPER (decimal numbers)");
        let nums: Vec<u32> = s
            .split(':')
            .map(|p| p.parse::<u32>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let (t, l, u) = match nums[..] {
            [t, i] => (t, i, i),
            [t, l, u] => (t, l, u),
            _ => return Err(bad()),
        };
        if l > u {
            return Err(format!("{s:?}: lower bound {l} is above upper bound {u}"));
        }
        Ok(Self {
            service_type: t,
            lower: l,
            upper: u,
        })
    }
}

impl fmt::Display for ServiceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{{{},{}}}", self.service_type, self.lower)
        } else {
            write!(f, "{{{},{},{}}}", self.service_type, self.lower, self.upper)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_ranges() {
        let a: ServiceSpec = "18888:17".parse().expect("addr");
        assert!(a.is_single());
        assert_eq!(a.to_string(), "{18888,17}");
        let r: ServiceSpec = "18888:0:100".parse().expect("range");
        assert_eq!((r.lower, r.upper), (0, 100));
        assert_eq!(r.to_string(), "{18888,0,100}");
        for bad in ["18888", "a:1", "1:2:3:4", "1:5:2", ""] {
            assert!(bad.parse::<ServiceSpec>().is_err(), "{bad}");
        }
    }
}
