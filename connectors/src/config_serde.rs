//! Serde helpers for connector settings: environment names read as
//! `records.md` spells them, with errors that list the accepted values.

use crate::record::Environment;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// One environment name.
pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<Environment, D::Error> {
    let s = String::deserialize(d)?;
    Environment::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown environment {s:?} (expected one of {})",
            Environment::expected()
        ))
    })
}

/// A map of ids to environment names.
pub fn map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Environment>, D::Error> {
    let m = BTreeMap::<String, String>::deserialize(d)?;
    m.into_iter()
        .map(|(k, s)| match Environment::parse(&s) {
            Some(e) => Ok((k, e)),
            None => Err(serde::de::Error::custom(format!(
                "environment of {k:?}: unknown value {s:?} (expected one of {})",
                Environment::expected()
            ))),
        })
        .collect()
}

/// The default environment of connector settings.
pub fn production() -> Environment {
    Environment::Production
}
