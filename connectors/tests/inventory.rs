//! The `inventory` connector: assets from TOML and CSV files and a
//! Backstage catalog played on loopback, merged (the file wins), with bad
//! rows reported by file, line or entity and field.

use crate::support::*;
use axum::extract::{Request, State};
use secmetrics_connectors::inventory::{InventoryConnector, InventorySettings};
use secmetrics_connectors::{Asset, Connector, Extra, Record, SyncMode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A Backstage catalog: `GET /api/catalog/entities` with `limit`/`offset`.
async fn backstage(entities: Vec<Value>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let state = (Arc::new(entities), seen.clone());
    let app = axum::Router::new().fallback(
        |State((entities, seen)): State<(Arc<Vec<Value>>, Seen)>, req: Request| async move {
            let q = req.uri().query().unwrap_or("").to_string();
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            seen.lock().unwrap().push((q.clone(), auth));
            if req.uri().path() != "/api/catalog/entities" {
                return axum::response::Response::builder()
                    .status(404)
                    .body(axum::body::Body::from("{}"))
                    .unwrap();
            }
            let p = |k: &str| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse::<usize>().ok())
            };
            let (limit, offset) = (p("limit").unwrap_or(1000), p("offset").unwrap_or(0));
            let page: Vec<Value> = entities.iter().skip(offset).take(limit).cloned().collect();
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(&page).unwrap()))
                .unwrap()
        },
    );
    let app = app.with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn entity(name: &str, annotations: Value, spec: Value) -> Value {
    json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
           "metadata": {"namespace": "default", "name": name, "annotations": annotations},
           "spec": spec})
}

fn build(v: Value) -> InventoryConnector {
    let s: InventorySettings = serde_json::from_value(v).unwrap();
    s.build(Some(SecretString::from("bs-token"))).unwrap()
}

fn assets(sink: &MemorySink) -> Vec<Asset> {
    sink.records
        .values()
        .map(|r| match r {
            Record::Asset(a) => a.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn a(id: &str, tier: u8, f: impl FnOnce(&mut Asset)) -> Asset {
    let mut x = Asset {
        id: id.into(),
        source: "inventory".into(),
        name: id.into(),
        tier,
        critical: tier == 1,
        in_scope: true,
        product_line: None,
        owner: None,
        extra: Extra::default(),
    };
    f(&mut x);
    x
}

#[tokio::test]
async fn toml_and_csv_files_give_exact_assets_and_name_bad_rows() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("assets.toml");
    std::fs::write(
        &toml_path,
        r#"
[[assets]]
id = "payments-api"
name = "Payments API"
tier = 1
product_line = "payments"
owner = "team-pay"

[[assets]]
id = "blog"
tier = 3
in_scope = false
cost_center = "42"

[[assets]]
id = "ledger"
tier = 2
critical = true

[[assets]]
id = "broken"
tier = 4
"#,
    )
    .unwrap();
    let c = build(json!({"name": "inventory", "path": toml_path}));
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.skipped, out.unreadable), (1, 1));
    assert_eq!(
        assets(&sink),
        vec![
            a("blog", 3, |x| {
                x.in_scope = false;
                x.extra = Extra(json!({"cost_center": "42"}).as_object().unwrap().clone());
            }),
            a("ledger", 2, |x| x.critical = true),
            a("payments-api", 1, |x| {
                x.name = "Payments API".into();
                x.product_line = Some("payments".into());
                x.owner = Some("team-pay".into());
            }),
        ]
    );
    let text = logs.text();
    assert!(
        text.contains(&format!(
            "{}: assets[3] (id \"broken\"): field `tier`: must be 1, 2 or 3, found 4; skipped",
            toml_path.display()
        )),
        "{text}"
    );
    // Read again: nothing changed, nothing reported twice.
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.committed.unchanged, out.committed.replaced), (3, 0));
    assert_eq!(logs.text().matches("assets[3]").count(), 1);

    let csv_path = dir.path().join("assets.csv");
    std::fs::write(
        &csv_path,
        "id,name,tier,critical,owner\r\npayments-api,\"Payments, API\",1,,team-pay\r\nledger,,2,yes,\r\nbroken,,x,,\r\n",
    )
    .unwrap();
    let c = build(json!({"name": "inventory", "path": csv_path}));
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!(out.unreadable, 1);
    assert_eq!(
        assets(&sink),
        vec![
            a("ledger", 2, |x| x.critical = true),
            a("payments-api", 1, |x| {
                x.name = "Payments, API".into();
                x.owner = Some("team-pay".into());
            }),
        ]
    );
    assert!(
        logs.text().contains(&format!(
            "{}:4: field `tier`: must be 1, 2 or 3, found \"x\"; skipped",
            csv_path.display()
        )),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn backstage_entities_take_tier_and_owner_from_annotations_and_the_file_wins() {
    let (base, seen) = backstage(vec![
        entity(
            "payments-api",
            json!({"secmetrics.io/tier": "tier-1", "secmetrics.io/owner": "team-pay"}),
            json!({"owner": "group:default/payments", "system": "payments"}),
        ),
        entity(
            "search",
            json!({"secmetrics.io/tier": "2", "secmetrics.io/in-scope": "false"}),
            json!({"owner": "group:default/search"}),
        ),
        entity("no-tier", json!({}), json!({})),
        entity(
            "ledger",
            json!({"secmetrics.io/tier": "3"}),
            json!({"owner": "group:default/finance", "system": "finance"}),
        ),
        entity("odd", json!({"secmetrics.io/tier": "gold"}), json!({})),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overrides.toml");
    std::fs::write(&file, "[[assets]]\nid = \"ledger\"\ntier = 1\n").unwrap();
    let c = build(json!({
        "name": "inventory", "path": file,
        "backstage": {"base_url": base, "tier_annotation": "secmetrics.io/tier",
                      "owner_annotation": "secmetrics.io/owner",
                      "in_scope_annotation": "secmetrics.io/in-scope", "page_size": 2}
    }));
    let mut sink = MemorySink::default();
    let out = c
        .sync(None, SyncMode::Incremental, &mut sink)
        .await
        .unwrap();
    assert_eq!((out.skipped, out.unreadable, out.requests), (2, 2, 4));
    let bk = |k: &str| Extra(json!({"backstage_kind": k}).as_object().unwrap().clone());
    assert_eq!(
        assets(&sink),
        vec![
            // The file's ledger replaces Backstage's.
            a("ledger", 1, |_| {}),
            a("payments-api", 1, |x| {
                x.owner = Some("team-pay".into());
                x.product_line = Some("payments".into());
                x.extra = bk("Component");
            }),
            a("search", 2, |x| {
                x.in_scope = false;
                x.extra = bk("Component");
            }),
        ]
    );
    let seen = seen.lock().unwrap().clone();
    let queries: Vec<&str> = seen.iter().map(|(q, _)| q.as_str()).collect();
    assert_eq!(
        queries,
        [
            "filter=kind%3Dcomponent&limit=2&offset=0",
            "filter=kind%3Dcomponent&limit=2&offset=2",
            "filter=kind%3Dcomponent&limit=2&offset=4"
        ]
    );
    assert!(seen
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some("Bearer bs-token")));
}

#[test]
fn settings_need_a_file_or_a_catalog() {
    let s: InventorySettings = serde_json::from_value(json!({"name": "inv"})).unwrap();
    let e = s.build(None).unwrap_err().to_string();
    assert!(e.contains("give `path`"), "{e}");
    let s: InventorySettings =
        serde_json::from_value(json!({"name": "inv", "path": "/x/assets.yaml"})).unwrap();
    let e = s.build(None).unwrap_err().to_string();
    assert!(e.contains(".toml or .csv"), "{e}");
    let e = serde_json::from_value::<InventorySettings>(json!({"name": "inv", "paths": ["x"]}))
        .unwrap_err();
    assert!(e.to_string().contains("paths"));
}
