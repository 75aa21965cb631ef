//! Fuzz target: the PagerDuty incidents page parser
//! (`PagerdutyConnector::parse_incidents_page`). The first byte picks one
//! of three connectors (no validation rule, a priority rule, a field rule
//! by dotted path); the rest is the page body. Every incident must survive
//! export and import.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use secmetrics_connectors::pagerduty::{PagerdutyConnector, PagerdutySettings};
use secmetrics_connectors::Record;
use std::sync::OnceLock;

fn connectors() -> &'static Vec<PagerdutyConnector> {
    static C: OnceLock<Vec<PagerdutyConnector>> = OnceLock::new();
    C.get_or_init(|| {
        [
            serde_json::json!({"name": "pd"}),
            serde_json::json!({"name": "pd", "services": {"PSVC9": "checkout"},
                "severities": {"SEV-1": "critical"},
                "validated": {"from": "priority", "true_values": ["P1", "P2"], "false_values": ["P5"]}}),
            serde_json::json!({"name": "pd",
                "validated": {"from": "field", "field": "incident_type.name",
                              "true_values": ["security"], "false_values": ["false_alarm"]}}),
        ]
        .into_iter()
        .map(|v| {
            let s: PagerdutySettings = serde_json::from_value(v).expect("settings");
            s.build(None).expect("connector")
        })
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let c = &connectors()[usize::from(pick) % 3];
    if let Ok(items) = c.parse_incidents_page(body) {
        for item in items {
            match item {
                Ok(incident) => common::check_record(&Record::Incident(incident)),
                Err(why) => assert!(why.starts_with("incident ")),
            }
        }
    }
});
