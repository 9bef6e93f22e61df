//! `serve --tls-cert --tls-key`: a batch published, submitted, run and collected over HTTPS with
//! a certificate signed by the project's own CA; plain HTTP and untrusting clients are refused.

use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::{Value, json};

use crate::durability::{ServerProcess, results, wait_for};
use crate::support::{http_json, http_volunteer_round, platform, publish_body};

/// A CA and a certificate it signed for 127.0.0.1, as PEM files in `dir`: (ca, cert, key).
fn project_ca_and_certificate(
    dir: &Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "musketeer test project CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, server.pem()).unwrap();
    std::fs::write(&paths.2, server_key.serialize_pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_over_https_and_plain_http_is_told_to_use_it() {
    let (dir, data, admin) = crate::cli::init();
    let (ca, cert, key) = project_ca_and_certificate(dir.path());
    let server = ServerProcess::start_with(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = server.url.clone();
    assert!(url.starts_with("https://"), "{url}");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let signing_key =
        musketeer_signing_keys::read_secret_key(&dir.path().join("keys/musketeer.key")).unwrap();
    let post = |path: &str, body: Value| https.post(format!("{url}{path}")).json(&body);
    let publish = publish_body(&signing_key, "echo", "1.0.0", b"m");
    assert_eq!(
        http_json(post("/api/v1/apps", publish), Some(&admin))
            .await
            .0,
        201
    );
    let submit = json!({"app": "echo", "inputs": ["a", "b"], "replication": {"min_quorum": 1}});
    let (_, submitted) = http_json(post("/api/v1/batches", submit), Some(&admin)).await;
    let batch = submitted["batch_id"].as_u64().unwrap();
    let register = json!({"name": "athos", "platform": platform()});
    let (_, registered) = http_json(post("/api/v1/hosts/register", register), None).await;
    let host = registered["host_token"].as_str().unwrap().to_owned();
    wait_for(
        "the batch to finish over https",
        Duration::from_secs(60),
        async || {
            http_volunteer_round(&https, &url, &host, Value::clone).await;
            let status = https.get(format!("{url}/api/v1/batches/{batch}"));
            http_json(status, Some(&admin)).await.1["state"] == "finished"
        },
    )
    .await;
    let rows = results(&https, &url, &admin, batch).await;
    let outputs: Vec<&Value> = rows.values().map(|row| &row["output"]).collect();
    assert_eq!(outputs, [&json!("a"), &json!("b")]);

    // Plain HTTP on the TLS port gets an answer saying what to do.
    let plain_url = url.replacen("https://", "http://", 1);
    let plain = reqwest::get(format!("{plain_url}/healthz")).await.unwrap();
    assert_eq!(plain.status(), 400);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["error"], "tls_required", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("https://"),
        "{body}"
    );

    // A client that does not trust the project's CA refuses the server.
    let error = reqwest::get(format!("{url}/healthz")).await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}

#[test]
fn serve_names_the_tls_file_it_cannot_use() {
    let (dir, data, _) = crate::cli::init();
    let (_, cert, _) = project_ca_and_certificate(dir.path());
    let missing = dir.path().join("missing-key.pem");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_musketeer-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--tls-key") && stderr.contains("missing-key.pem"),
        "{stderr}"
    );
    // One without the other is a usage error.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_musketeer-server"))
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--tls-key"),
        "{output:?}"
    );
}
