//! The OpenAPI documents in `openapi/` are generated from the code (utoipa annotations). This
//! test fails when they are stale; regenerate with
//! `KINFOLD_UPDATE_OPENAPI=1 cargo test -p kinfold-tests --test openapi`.

mod common;

use std::path::PathBuf;

use common::TestDemo;
use utoipa::OpenApi;

fn documents() -> Vec<(&'static str, String)> {
    let pretty = |doc: utoipa::openapi::OpenApi| doc.to_pretty_json().expect("serialises") + "\n";
    vec![
        ("gateway", pretty(kinfold_gateway::ApiDoc::openapi())),
        ("adapter", pretty(kinfold_adapter::ApiDoc::openapi())),
    ]
}

#[test]
fn the_committed_openapi_documents_match_the_code() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi");
    let update = std::env::var_os("KINFOLD_UPDATE_OPENAPI").is_some();
    for (name, generated) in documents() {
        let path = dir.join(format!("{name}.json"));
        if update {
            std::fs::write(&path, &generated).expect("write openapi document");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run KINFOLD_UPDATE_OPENAPI=1 cargo test -p kinfold-tests --test openapi",
            path.display()
        );
    }
}

#[tokio::test]
async fn the_gateway_serves_its_document_and_an_offline_docs_page() {
    let t = TestDemo::start(1).await;
    let served: serde_json::Value = t
        .http
        .get(t.gateway("/openapi.json"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let expected: serde_json::Value = serde_json::from_str(&documents()[0].1).expect("json");
    assert_eq!(served, expected);
    for path in ["/Patient/{id}/$everything", "/Patient", "/metadata"] {
        assert!(served["paths"].get(path).is_some(), "{path} is documented");
    }

    let page = t
        .http
        .get(t.gateway("/docs/"))
        .send()
        .await
        .expect("answered");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "the Swagger UI page");
    assert!(!html.contains("src=\"http"), "no scripts from the internet");
    let script = t
        .http
        .get(t.gateway("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .expect("answered");
    assert_eq!(
        script.status().as_u16(),
        200,
        "the UI's script is served locally"
    );
    t.demo.shutdown().await;
}
