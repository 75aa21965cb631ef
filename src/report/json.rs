//! The JSON rendering: the spec's contract, pretty-printed.

use crate::kpi::KpiPack;

/// The pack as pretty JSON, with a trailing newline.
pub fn render(pack: &KpiPack) -> String {
    let mut s = pack.to_json_pretty();
    s.push('\n');
    s
}
