//! A project served over HTTPS with a certificate from its own CA (`serve --tls-cert
//! --tls-key`): `publish`, `submit --wait` and a volunteer (`join`) given the CA with `--ca-cert`
//! finish a batch; without it the client refuses the server.

use std::path::{Path, PathBuf};

use musketeer_task_artifacts::PRIMES;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::support::{Project, musketeer, musketeer_ok, path, primes_answer};

/// A CA and a certificate it signed for 127.0.0.1, as PEM files in `dir`: (ca, cert, key).
fn project_ca_and_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "musketeer e2e project CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write the CA");
    std::fs::write(&paths.1, server.pem()).expect("write the certificate");
    std::fs::write(&paths.2, server_key.serialize_pem()).expect("write the key");
    paths
}

#[test]
fn a_volunteer_and_a_researcher_trusting_the_project_ca_finish_a_batch_over_https() {
    let certs = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = project_ca_and_certificate(certs.path());
    let mut project = Project::start_with(&["--tls-cert", path(&cert), "--tls-key", path(&key)]);
    project.url = project.url.replacen("http://", "https://", 1);
    let url = project.url.clone();

    let signing_key = project.keys_dir().join("musketeer.key");
    let manifest = project.dir.path().join("primes-1.0.0.manifest.json");
    musketeer_ok(
        &[
            "sign",
            "--key",
            path(&signing_key),
            "--module",
            PRIMES,
            "--app",
            "primes",
            "--version",
            "1.0.0",
            "--out",
            path(&manifest),
        ],
        &[],
    );
    // Without the CA, the client refuses the server's certificate and says so.
    let refused = std::process::Command::new(musketeer())
        .args([
            "publish",
            "--server",
            &url,
            "--manifest",
            path(&manifest),
            "--module",
            PRIMES,
        ])
        .env("MUSKETEER_TOKEN", &project.publisher)
        .output()
        .expect("run musketeer publish");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    let published = musketeer_ok(
        &[
            "publish",
            "--server",
            &url,
            "--ca-cert",
            path(&ca),
            "--manifest",
            path(&manifest),
            "--module",
            PRIMES,
        ],
        &[("MUSKETEER_TOKEN", &project.publisher)],
    );
    assert!(published.contains("published"), "{published}");

    let _volunteer = project.join_with("athos", 2, &["--ca-cert", path(&ca)]);
    let inputs = project.dir.path().join("ranges.jsonl");
    std::fs::write(
        &inputs,
        "{\"from\":1,\"to\":1000}\n{\"from\":1000,\"to\":5000}\n",
    )
    .expect("write the inputs");
    let results = project.dir.path().join("results.jsonl");
    musketeer_ok(
        &[
            "submit",
            "--server",
            &url,
            "--ca-cert",
            path(&ca),
            "--app",
            "primes",
            "--quorum",
            "1",
            "--inputs",
            path(&inputs),
            "--wait",
            "--output",
            path(&results),
        ],
        &[("MUSKETEER_TOKEN", &project.researcher)],
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&results)
        .expect("read the results")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let outputs: Vec<&serde_json::Value> = rows.iter().map(|row| &row["output"]).collect();
    assert_eq!(
        outputs,
        [&primes_answer(1, 1000), &primes_answer(1000, 5000)]
    );
}
