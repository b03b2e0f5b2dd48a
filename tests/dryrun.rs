//! `akv-csi-provider mount`, the SecretProviderClass dry run, as a user runs
//! it from a laptop or CI: the binary as a subprocess, reaching the fake
//! through `HTTPS_PROXY` and trusting it through `SSL_CERT_FILE`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fake_azure::{
    BLOG_CLIENT_ID, BLOG_CLIENT_SECRET, BLOG_NAMESPACE, BLOG_SECRET_NAME, BLOG_SECRET_VALUE,
    BLOG_SERVICE_ACCOUNT, BLOG_VAULT, FakeAzure, Seed, grant,
};
use tempfile::TempDir;

use crate::support::driver::WORKLOAD_IDENTITY_AUDIENCE;
use crate::support::harness::{BLOG_SPC, ISSUER, run_binary};

/// The fake, its CA and a working directory for input files.
struct Setup {
    fake: FakeAzure,
    dir: TempDir,
    ca: PathBuf,
}

impl Setup {
    async fn new() -> Self {
        let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
            .await
            .expect("fake starts");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        fake.write_ca_pem(&ca).unwrap();
        Self { fake, dir, ca }
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A token for `service_account` in the blog namespace, as
    /// `kubectl create token` prints it (with a newline).
    fn token_file(&self, service_account: &str) -> PathBuf {
        let token = fake_azure::mint_service_account_token(
            ISSUER,
            BLOG_NAMESPACE,
            service_account,
            WORKLOAD_IDENTITY_AUDIENCE,
            Duration::from_secs(3600),
        );
        self.file(&format!("{service_account}.token"), &format!("{token}\n"))
    }

    async fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = run_binary(args, Some((&self.fake, &self.ca))).await;
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn workload_identity_prints_a_table_without_contents() {
    let setup = Setup::new().await;
    let spc = setup.file("spc.yaml", BLOG_SPC);
    let token = setup.token_file(BLOG_SERVICE_ACCOUNT);
    let (code, stdout, stderr) = setup
        .run(&[
            "mount",
            "--spc",
            path(&spc),
            "--pod",
            "busybox-secrets-store-inline",
            "--service-account",
            BLOG_SERVICE_ACCOUNT,
            "--token-file",
            path(&token),
        ])
        .await;
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    let version = setup
        .fake
        .secret_versions(BLOG_VAULT, BLOG_SECRET_NAME)
        .unwrap()[0]
        .clone();
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            vec!["PATH", "MODE", "SIZE", "OBJECT ID", "VERSION"],
            vec![
                BLOG_SECRET_NAME,
                "0644",
                &BLOG_SECRET_VALUE.len().to_string(),
                &format!("secret/{BLOG_SECRET_NAME}"),
                &version,
            ],
        ]
    );
    assert!(!stdout.contains(BLOG_SECRET_VALUE) && !stderr.contains(BLOG_SECRET_VALUE));
    assert!(
        stderr.contains("mount succeeded"),
        "the provider's own mount line: {stderr}"
    );
    assert_eq!(setup.fake.counters().tokens_issued(), 1);
}

#[tokio::test]
async fn out_writes_the_files_with_their_modes() {
    let setup = Setup::new().await;
    let spc_text = BLOG_SPC.replace(
        "          objectType: secret\n",
        "          objectType: secret\n          objectAlias: db/password\n          filePermission: \"0600\"\n",
    );
    let spc = setup.file("spc.yaml", &spc_text);
    let token = setup.token_file(BLOG_SERVICE_ACCOUNT);
    let out = setup.dir.path().join("out");
    let (code, stdout, stderr) = setup
        .run(&[
            "mount",
            "--spc",
            path(&spc),
            "--namespace",
            BLOG_NAMESPACE,
            "--pod",
            "p",
            "--service-account",
            BLOG_SERVICE_ACCOUNT,
            "--token-file",
            path(&token),
            "--out",
            path(&out),
        ])
        .await;
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    let file = out.join("db/password");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), BLOG_SECRET_VALUE);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(stdout.contains("wrote 1 file(s)"), "{stdout}");
}

#[tokio::test]
async fn service_principal_from_a_secret_file() {
    let setup = Setup::new().await;
    let spc_text = BLOG_SPC.replace(
        "    clientID: \"4f6f3c2a-1b9e-4f0e-9d8a-0c1b2d3e4f50\"\n",
        "",
    );
    assert_ne!(spc_text, BLOG_SPC, "the example SPC names the client id");
    let spc = setup.file("spc.yaml", &spc_text);
    let secret = setup.file("client-secret", &format!("{BLOG_CLIENT_SECRET}\n"));
    let (code, stdout, stderr) = setup
        .run(&[
            "mount",
            "--spc",
            path(&spc),
            "--pod",
            "p",
            "--client-id",
            BLOG_CLIENT_ID,
            "--client-secret-file",
            path(&secret),
            "-v=4",
        ])
        .await;
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains(BLOG_SECRET_NAME), "{stdout}");
    assert!(
        stderr.contains("azure request"),
        "-v after the subcommand: {stderr}"
    );
    assert!(!stderr.contains(BLOG_CLIENT_SECRET) && !stdout.contains(BLOG_CLIENT_SECRET));
    let counters = setup.fake.counters();
    assert_eq!(
        counters.token_requests_with(grant::CLIENT_SECRET, fake_azure::OUTCOME_OK),
        1,
        "{counters:?}"
    );
}

#[tokio::test]
async fn a_failed_mount_exits_1_with_the_pod_event_text() {
    let setup = Setup::new().await;
    let spc = setup.file("spc.yaml", BLOG_SPC);
    let token = setup.token_file("default");
    let (code, stdout, stderr) = setup
        .run(&[
            "mount",
            "--spc",
            path(&spc),
            "--pod",
            "p",
            "--service-account",
            "default",
            "--token-file",
            path(&token),
        ])
        .await;
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: failed to mount objects, error: "),
        "{stderr}"
    );
    assert!(last.contains("AADSTS70021"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[tokio::test]
async fn bad_input_exits_64_naming_what_is_wrong() {
    let setup = Setup::new().await;
    let unquoted = setup.file(
        "unquoted.yaml",
        &BLOG_SPC.replace(
            "keyvaultName: kv-blogpost-jx01",
            "keyvaultName: kv-blogpost-jx01\n    usePodIdentity: false",
        ),
    );
    let blog = setup.file("spc.yaml", BLOG_SPC);
    let cases: [(&[&str], &str); 4] = [
        (
            &["mount", "--spc", path(&unquoted), "--pod", "p"],
            "spec.parameters.usePodIdentity must be a string",
        ),
        (
            &[
                "mount",
                "--spc",
                path(&blog),
                "--pod",
                "p",
                "--namespace",
                "other",
            ],
            "the SecretProviderClass is in namespace blog-post, the pod in other",
        ),
        (
            &["mount", "--spc", "/nonexistent/spc.yaml", "--pod", "p"],
            "--spc /nonexistent/spc.yaml: ",
        ),
        (
            &[
                "mount",
                "--spc",
                path(&blog),
                "--pod",
                "p",
                "--token-file",
                "/nonexistent/token",
            ],
            "--token-file /nonexistent/token: ",
        ),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = setup.run(args).await;
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(setup.fake.counters().token_requests_total(), 0);
}
