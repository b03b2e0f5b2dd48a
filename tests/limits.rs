//! Limits a SecretProviderClass or a vault can run into, through the
//! socket: the response size the driver accepts (4 MiB by default,
//! `--max-call-send-msg-size` here), objects per mount, YAML nesting and
//! the driver's path rules. Each is a clear error naming what to change.

use fake_azure::{SecretSeed, Seed};

use crate::support::driver::Pod;
use crate::support::harness::{Harness, ISSUER};

/// The blog seed plus secrets of the given sizes, `big0`, `big1`, ….
fn seed_with(sizes: &[usize]) -> Seed {
    let mut seed = Seed::blog_walkthrough(ISSUER);
    for (i, size) in sizes.iter().enumerate() {
        let value = char::from(b'a' + i as u8).to_string().repeat(*size);
        seed.vaults[0]
            .secrets
            .push(SecretSeed::new(format!("big{i}"), value));
    }
    seed
}

fn objects(names: impl IntoIterator<Item = String>) -> String {
    let mut yaml = String::from("array:\n");
    for name in names {
        yaml.push_str(&format!(
            "  - |\n    objectName: {name}\n    objectType: secret\n"
        ));
    }
    yaml
}

async fn mount(harness: &Harness, yaml: &str) -> Result<usize, String> {
    harness
        .mount_spc(&Harness::blog_spc_with_objects(yaml), &Pod::blog())
        .await
        .map(|r| r.files.iter().map(|f| f.contents.len()).sum())
        .map_err(|s| s.message().to_owned())
}

/// Three 1.5 MiB secrets make a response the driver would refuse (its
/// gRPC client takes 4 MiB by default): the mount fails at the file that
/// crosses the limit, naming it and both flags.
#[tokio::test]
async fn a_mount_larger_than_the_driver_accepts_fails_naming_the_file() {
    let size = 3 << 19;
    let harness = Harness::start_with(seed_with(&[size, size, size]), &[]).await;
    let yaml = objects((0..3).map(|i| format!("big{i}")));
    let message = mount(&harness, &yaml).await.unwrap_err();
    assert_eq!(
        message,
        format!(
            "failed to mount objects, error: the mount's files exceed 4194304 bytes, the most the \
             driver accepts (its --max-call-recv-msg-size, 4 MiB by default; ours is \
             --max-call-send-msg-size), at file \"big2\" ({size} bytes, secret/big2); mount \
             fewer or smaller objects, or raise both limits"
        )
    );
    // Two of them fit.
    let two = objects((0..2).map(|i| format!("big{i}")));
    assert_eq!(mount(&harness, &two).await, Ok(2 * size));
}

/// A response just under the limit reaches a client that, like the
/// driver, decodes at most 4 MiB: our size bound never undercounts.
#[tokio::test]
async fn a_response_just_under_the_limit_reaches_the_driver() {
    let limit = 4 << 20;
    // Per file: contents + path + id + version + 48 bytes of framing.
    let overhead = |name: &str| name.len() + format!("secret/{name}").len() + 32 + 48;
    let first = 2 << 20;
    let second = limit - first - overhead("big0") - overhead("big1");
    let harness = Harness::start_with(seed_with(&[first, second]), &[]).await;
    let yaml = objects((0..2).map(|i| format!("big{i}")));
    assert_eq!(mount(&harness, &yaml).await, Ok(first + second));
}

#[tokio::test]
async fn the_response_limit_follows_the_flag() {
    let harness = Harness::start_with(
        seed_with(&[40_000, 40_000, 40_000]),
        &["--max-call-send-msg-size=100000"],
    )
    .await;
    let message = mount(&harness, &objects((0..3).map(|i| format!("big{i}"))))
        .await
        .unwrap_err();
    assert!(
        message.contains("the mount's files exceed 100000 bytes")
            && message.contains("at file \"big2\" (40000 bytes, secret/big2)"),
        "{message}"
    );
}

/// Objects per mount, YAML nesting, and a file name the driver would
/// refuse: refused before any request, naming the limit or the object.
#[tokio::test]
async fn input_limits_are_errors_naming_the_limit() {
    let harness = Harness::start().await;
    let before = harness.fake.counters();
    let too_many = objects((0..1001).map(|i| format!("s{i}")));
    assert_eq!(
        mount(&harness, &too_many).await.unwrap_err(),
        "failed to mount objects, error: objects lists 1001 objects, the limit is 1000"
    );
    let deep = format!("array: []\nx: {}", "[".repeat(100_000));
    assert_eq!(
        mount(&harness, &deep).await.unwrap_err(),
        "failed to mount objects, error: objects nests flow collections ([…] or {…}) more than 64 levels deep"
    );
    let long_element = "n".repeat(256);
    let yaml = format!(
        "array:\n  - |\n    objectName: s\n    objectAlias: dir/{long_element}\n    objectType: secret\n"
    );
    let message = mount(&harness, &yaml).await.unwrap_err();
    assert!(
        message.starts_with("failed to mount objects, error: failed to get objectType:secret, objectName:s, objectVersion:: file name element")
            && message.ends_with("is longer than 255 bytes"),
        "{message}"
    );
    let nested = "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: b\n    objectAlias: a/b\n    objectType: secret\n";
    let message = mount(&harness, nested).await.unwrap_err();
    assert!(message.contains("writes the file \"a\""), "{message}");
    assert_eq!(
        harness.fake.counters().token_requests_total(),
        before.token_requests_total(),
        "nothing was requested"
    );
}

/// The worst 1 MiB `objects` documents, eight of each at once: alias
/// amplification, block nesting, a flat million-node list and billion
/// laughs. Each is refused naming the limit, before it is built, and the
/// provider's peak resident memory stays under the 48 MiB target of
/// docs/benchmarks.md (before the shape scan: 966 MiB for 506 KB of
/// aliases, 357 MiB for eight 1 MiB `- - - …`).
#[tokio::test]
async fn yaml_bombs_keep_peak_memory_under_the_target() {
    const MIB: usize = 1 << 20;
    let harness = Harness::start().await;
    let scalar = "x".repeat(MIB / 2);
    let aliases = vec!["*a"; (MIB / 2 - 64) / 3].join(",");
    let laughs = (1..10).fold(String::from("a0: &a0 lol\n"), |mut yaml, i| {
        let refs = vec![format!("*a{}", i - 1); 10].join(",");
        yaml.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        yaml
    });
    let bombs = [
        (
            format!("a: &a {scalar}\narray: [{aliases}]"),
            "more than 2097152 bytes",
        ),
        (
            format!("array:\n{}x", "- ".repeat(MIB / 2 - 16)),
            "more than 64 levels deep",
        ),
        (
            format!("array: [{}x]", "x,".repeat(MIB / 2 - 16)),
            "more than 100000 values",
        ),
        (format!("{laughs}array: *a9"), "expand it to more than"),
    ];
    for (yaml, limit) in &bombs {
        assert!(yaml.len() <= MIB, "{}", yaml.len());
        let attempts = (0..8).map(|_| mount(&harness, yaml));
        for result in futures_util::future::join_all(attempts).await {
            let message = result.unwrap_err();
            assert!(
                message.starts_with(
                    "failed to mount objects, error: objects is refused before parsing: "
                ) && message.contains(limit),
                "{message}"
            );
        }
    }
    let peak = harness.memory("VmHWM");
    eprintln!("provider peak RSS after the bombs: {} KiB", peak / 1024);
    assert!(peak < 48 * MIB as u64, "peak RSS {} KiB", peak / 1024);
}

/// 64 streams on 4 connections, each holding an unfinished 3.9 MiB
/// message (before: +250 MiB of peak RSS, every message buffered whole):
/// messages past the node-wide budget of unfinished request bytes are
/// refused at once with RESOURCE_EXHAUSTED, a mount still goes through
/// meanwhile, the messages held are refused once their receive time is
/// over, and the provider's peak RSS stays bounded.
#[tokio::test]
async fn unfinished_messages_are_bounded_across_connections() {
    use crate::support::stalled::Stalled;
    const MIB: usize = 1 << 20;
    let harness = Harness::start().await;
    let declared = MIB * 39 / 10;
    let before = harness.memory("VmHWM");
    let mut stalled = Stalled::open(&harness.socket, 4, 16, declared, declared - 1)
        .await
        .unwrap();
    let refused = stalled.answered(std::time::Duration::from_secs(3)).await;
    let exhausted = refused.iter().filter(|code| **code == Some(8)).count();
    assert_eq!(exhausted, refused.len(), "{refused:?}");
    let held = stalled.len() - exhausted;
    assert!(
        (1..=4).contains(&held),
        "16 MiB hold at most four 3.9 MiB messages; {held} held"
    );
    let spc = crate::support::driver::spc_from_yaml(crate::support::harness::BLOG_SPC).unwrap();
    let pod = Pod::blog();
    let response = harness
        .mount_spc(&spc, &pod)
        .await
        .expect("a mount goes through while the budget is taken");
    assert_eq!(response.files.len(), 1);
    let peak = harness.memory("VmHWM");
    eprintln!(
        "provider peak RSS {} KiB -> {} KiB with {held} messages held",
        before / 1024,
        peak / 1024
    );
    assert!(
        peak - before < 48 * MIB as u64,
        "peak RSS grew by {} KiB",
        (peak - before) / 1024
    );
    let overdue = stalled.answered(std::time::Duration::from_secs(12)).await;
    assert_eq!(
        overdue,
        vec![Some(4); held],
        "DEADLINE_EXCEEDED for the held ones"
    );
}
