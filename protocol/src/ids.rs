use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self).map_err(|_| ParseIdError { text: s.to_owned(), what: stringify!($name) })
            }
        }
    };
}

numeric_id!(
    /// A registered volunteer host.
    HostId
);
numeric_id!(
    /// A work unit: one input of a batch.
    UnitId
);
numeric_id!(
    /// A batch of work units submitted together.
    BatchId
);
numeric_id!(
    /// A user token (not the secret itself), used to revoke it and to own batches.
    TokenId
);

/// One replica of a work unit sent to one host ("result" in BOINC terms). Written `UNIT.N`,
/// e.g. `"42.1"` is the second replica of unit 42.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResultId {
    /// The unit this replica computes.
    pub unit: UnitId,
    /// The replica's index within its unit, from 0.
    pub replica: u32,
}

/// A text that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIdError {
    text: String,
    what: &'static str,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a valid {}", self.text, self.what)
    }
}

impl std::error::Error for ParseIdError {}

impl fmt::Display for ResultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.unit, self.replica)
    }
}

impl FromStr for ResultId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseIdError {
            text: s.to_owned(),
            what: "ResultId (UNIT.N)",
        };
        let (unit, replica) = s.split_once('.').ok_or_else(err)?;
        Ok(Self {
            unit: UnitId(unit.parse().map_err(|_| err())?),
            replica: replica.parse().map_err(|_| err())?,
        })
    }
}

impl Serialize for ResultId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResultId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn result_id_round_trips(unit in any::<u64>(), replica in any::<u32>()) {
            let id = ResultId { unit: UnitId(unit), replica };
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<ResultId>(&json).unwrap(), id);
        }
    }

    #[test]
    fn result_id_rejects_garbage() {
        for text in ["", "1", "1.", ".1", "a.b", "1.2.3", "-1.0"] {
            assert!(text.parse::<ResultId>().is_err(), "{text} parsed");
        }
        assert_eq!(
            "7.2".parse::<ResultId>().unwrap(),
            ResultId {
                unit: UnitId(7),
                replica: 2
            }
        );
    }
}
