//! Renderings of a golden pack: every shown KPI line carries its figure,
//! trend, target status and business sentence; HTML is self-contained.

use crate::common as util;
use secmetrics::kpi::{self, KpiConfig, KpiId, Period};
use secmetrics::report::{self, Format};

fn golden_pack() -> kpi::KpiPack {
    let estate = util::estate("golden/estate-medium.ndjson");
    let period = Period::parse_month("2026-10").expect("period");
    let mut cfg = KpiConfig::default();
    cfg.kpis.design_review_coverage.target = Some(0.8);
    cfg.kpis.design_review_coverage.owner = Some("appsec".into());
    kpi::with_history(
        &estate,
        &period,
        &cfg,
        "2026-11-02T06:00:00Z".parse().expect("time"),
        6,
    )
}

#[test]
fn text_table_has_every_kpi_with_its_business_sentence_and_no_colour_unless_asked() {
    let pack = golden_pack();
    let out = report::render(&pack, Format::Text, false);
    if std::env::var_os("SHOW").is_some() {
        println!("{out}");
    }
    assert!(!out.contains('\x1b'));
    for id in KpiId::ALL {
        assert!(out.contains(id.title()), "{}", id.as_str());
        assert!(out.contains(id.default_business()), "{}", id.as_str());
    }
    assert!(out.contains("off target (>= 80.0%)"));
    assert!(out.contains("no target"));
    let coloured = report::render(&pack, Format::Text, true);
    assert!(coloured.contains("\x1b[3"));
}

#[test]
fn text_follows_the_monthly_pack_order() {
    let out = report::render(&golden_pack(), Format::Text, false);
    let pos = |id: KpiId| out.find(id.title()).expect("title present");
    let order: Vec<usize> = KpiId::MONTHLY_PACK.iter().map(|id| pos(*id)).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

#[test]
fn markdown_is_a_table_with_business_sentences() {
    let out = report::render(&golden_pack(), Format::Markdown, false);
    assert!(out.starts_with("# Security KPI pack 2026-10"));
    assert!(out.contains("|---|---:|"));
    assert!(out.contains(KpiId::Mttr.default_business()));
}

#[test]
fn html_is_one_self_contained_file_with_three_charts() {
    let out = report::render(&golden_pack(), Format::Html, false);
    if let Some(path) = std::env::var_os("SHOW_HTML") {
        std::fs::write(path, &out).expect("write");
    }
    assert_eq!(out.matches("<svg").count(), 3, "three charts");
    assert!(!out.contains("src=\"http"), "no external resources");
    assert!(!out.contains("<link"), "no external stylesheet");
    assert!(out.contains("Mean time to remediate"));
    assert!(out.contains(KpiId::ExceptionDebt.default_business()));
}

#[test]
fn the_charts_share_one_size_in_equal_columns_with_readable_text() {
    let out = report::render(&golden_pack(), Format::Html, false);
    // One canvas size for all three, laid out in equal grid columns (at a
    // 1280 px window each is drawn about 520 px wide, checked in Chromium).
    let heads: Vec<&str> = out
        .match_indices("<svg ")
        .map(|(i, _)| &out[i..i + out[i..].find('>').unwrap()])
        .collect();
    assert_eq!(heads.len(), 3);
    assert!(
        heads.iter().all(|h| h.contains("viewBox=\"0 0 720 420\"")),
        "{heads:?}"
    );
    assert!(
        out.contains(
            ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr))"
        ),
        "charts in equal columns"
    );
    // No text under 15 canvas px: 11 px or more on screen at that width.
    let sizes: Vec<f64> = out
        .split("font-size=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .collect();
    assert!(sizes.len() > 30, "{sizes:?}");
    let smallest = sizes.iter().copied().fold(f64::MAX, f64::min);
    assert!(smallest >= 15.0, "text of {smallest} px in a 720 px chart");
}

#[test]
fn json_rendering_is_the_contract() {
    let out = report::render(&golden_pack(), Format::Json, false);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["period"]["start"], "2026-10-01T00:00:00Z");
    assert!(v["kpis"]["mttr"]["by_severity"]["critical"]["production"].is_object());
    assert_eq!(v["history"].as_array().map(Vec::len), Some(6));
}
