//! `grantkit` as its users run it: real processes, a real headless Chromium on the
//! sign-in pages, the emulators and the independent authorization server behind them.

mod support;

use grantkit::store::Precondition;
use grantkit::{TokenStore as _, store::KeyFilter};
use grantkit_emulator::{
    AutoConsent, Fault, FaultRule, JoinMeApp, JoinMeEmulator, JoinMeEndpoint, JoindinEmulator,
};
use std::time::{Duration, SystemTime};
use support::*;

const JOINME_ID: &str = "clijoinmekey0123456789ab";
const JOINME_SECRET: &str = "CliS3cret7";

/// A join.me emulator that approves at once, with an application on a free loopback
/// Callback URL, and a profile `jm` for it.
async fn joinme(home: &Home) -> JoinMeEmulator {
    joinme_with_store(&[home], None).await
}

/// As [`joinme`], with the profile `jm` on every one of `homes` and the tokens in `store`.
async fn joinme_with_store(homes: &[&Home], store: Option<&str>) -> JoinMeEmulator {
    let store = store.map(|store| ["--store", store]);
    joinme_with_args(homes, store.as_ref().map_or(&[][..], |args| &args[..])).await
}

/// As [`joinme`], with `extra` arguments to `profile add` on every one of `homes`.
async fn joinme_with_args(homes: &[&Home], extra: &[&str]) -> JoinMeEmulator {
    let emulator = JoinMeEmulator::builder().start().unwrap();
    let email = emulator.fixtures().email.clone();
    emulator.set_auto_consent(Some(AutoConsent::Approve(email)));
    let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
    emulator.add_app(JoinMeApp::new(
        JOINME_ID,
        JOINME_SECRET,
        redirect_uri.clone(),
    ));
    let base_url = emulator.base_url();
    let args = joinme_profile(&base_url, &redirect_uri, extra);
    for home in homes {
        let out = home.run(&args).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    emulator
}

/// `profile add jm …` (replacing one) for the join.me emulator at `base_url`, and `extra`.
fn joinme_profile<'a>(base_url: &'a str, redirect_uri: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "profile",
        "add",
        "jm",
        "--force",
        "--provider",
        "joinme",
        "--client-id",
        JOINME_ID,
        "--client-secret-env",
        "JM_SECRET",
        "--redirect-uri",
        redirect_uri,
        "--base-url",
        base_url,
        "--scope",
        "user_info",
    ];
    args.extend(extra);
    args
}

const ENV: [(&str, &str); 1] = [("JM_SECRET", JOINME_SECRET)];

/// Logs in to `jm` with the sign-in page opened by `open`.
async fn login_with<F, Fut>(home: &Home, open: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut command = home.command(&["login", "jm", "--no-browser"]);
    command.envs(ENV);
    let mut login = Running::start(command);
    let url = login
        .until(|line| url_in(line).filter(|u| u.contains("state=")))
        .await;
    open(url).await;
    let out = login.finish().await;
    assert!(out.status.success(), "login failed: {}", text(&out.stderr));
}

/// Logs in to `jm`, the test following the redirects as a browser would.
async fn login(home: &Home) {
    login_with(home, |url| async move {
        let page = reqwest::get(url).await.unwrap();
        assert!(page.status().is_success());
    })
    .await;
}

#[tokio::test]
async fn login_through_a_real_browser_lands_on_the_loopback_callback() {
    let home = Home::new();
    let emulator = joinme(&home).await;
    let browser = Browser::start().await;
    login_with(&home, |url| {
        let client = browser.client.clone();
        async move {
            client.goto(&url).await.unwrap();
        }
    })
    .await;
    browser.wait_for_text("close this tab").await;
    assert!(
        browser
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with("http://127.0.0.1:"),
        "the browser landed on the loopback callback"
    );
    browser.close().await;

    let token = home.run_with(&["token", "jm"], &ENV, None).await;
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token = text(&token.stdout);
    assert_eq!(token.lines().count(), 1, "the token alone: {token:?}");
    assert!(
        emulator.token_status(token.trim()).is_some(),
        "a token the service issued"
    );
}

#[tokio::test]
async fn device_login_with_the_browser_approving_the_code() {
    use grantkit_standard::testing::{AuthServer, AuthServerOptions, DEVICE_CLIENT, TEST_ACCOUNT};
    let server = AuthServer::start(AuthServerOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let home = Home::new();
    let added = home
        .run(&[
            "profile",
            "add",
            "std",
            "--provider",
            "standard",
            "--client-id",
            DEVICE_CLIENT.id,
            "--client-secret-env",
            "STD_SECRET",
            "--issuer",
            server.issuer(),
            "--scope",
            "openid",
        ])
        .await;
    assert!(added.status.success(), "{}", text(&added.stderr));
    let mut command = home.command(&["login", "std", "--device", "--no-browser"]);
    command.env("STD_SECRET", DEVICE_CLIENT.secret);
    let mut login = Running::start(command);
    let complete = login
        .until(|line| url_in(line).filter(|u| u.contains("user_code=")))
        .await;

    let browser = Browser::start().await;
    browser.client.goto(&complete).await.unwrap();
    browser.wait_for("#code").await;
    browser.click("#confirm").await;
    // The consent step: approve.
    browser.click("form[action$='/approve'] button").await;
    browser.wait_for_text("Signed in").await;
    browser.close().await;

    let out = login.finish().await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(TEST_ACCOUNT),
        "{}",
        text(&out.stderr)
    );
    let token = home
        .run_with(
            &["token", "std"],
            &[("STD_SECRET", DEVICE_CLIENT.secret)],
            None,
        )
        .await;
    assert!(token.status.success(), "{}", text(&token.stderr));
}

#[tokio::test]
async fn standard_login_through_a_real_browser_with_pkce() {
    use grantkit_standard::testing::{AuthServer, AuthServerOptions, BASIC_CLIENT};
    let server = AuthServer::start(AuthServerOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let home = Home::new();
    // No redirect URI: a native client may come back to any loopback port (RFC 8252 §7.3).
    let added = home
        .run(&[
            "profile",
            "add",
            "std",
            "--provider",
            "standard",
            "--client-id",
            BASIC_CLIENT.id,
            "--client-secret-env",
            "STD_SECRET",
            "--issuer",
            server.issuer(),
            "--scope",
            "openid",
        ])
        .await;
    assert!(added.status.success(), "{}", text(&added.stderr));
    let mut command = home.command(&["login", "std", "--no-browser"]);
    command.env("STD_SECRET", BASIC_CLIENT.secret);
    let mut login = Running::start(command);
    let url = login
        .until(|line| url_in(line).filter(|u| u.contains("state=")))
        .await;
    assert!(url.contains("code_challenge_method=S256"), "PKCE: {url}");

    let browser = Browser::start().await;
    browser.client.goto(&url).await.unwrap();
    browser.click("form[action$='/approve'] button").await;
    browser.wait_for_text("close this tab").await;
    browser.close().await;

    let out = login.finish().await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = home
        .run_with(
            &["token", "std"],
            &[("STD_SECRET", BASIC_CLIENT.secret)],
            None,
        )
        .await;
    assert!(token.status.success(), "{}", text(&token.stderr));
}

#[tokio::test]
async fn joindin_login_through_the_oauth_allow_page_in_a_real_browser() {
    use grantkit_emulator::JoindinClient;
    let emulator = JoindinEmulator::start().unwrap();
    let fx = emulator.fixtures().clone();
    let redirect_uri = format!("http://127.0.0.1:{}/joindin", free_port());
    emulator.add_client(JoindinClient::untrusted(
        "clilegacykey",
        "cliLegacy/Secret+",
        &redirect_uri,
    ));
    let home = Home::new();
    let added = home
        .run(&[
            "profile",
            "add",
            "jd",
            "--provider",
            "joindin",
            "--client-id",
            "clilegacykey",
            "--client-secret-env",
            "JD_SECRET",
            "--base-url",
            &emulator.base_url(),
            "--redirect-uri",
            &redirect_uri,
        ])
        .await;
    assert!(added.status.success(), "{}", text(&added.stderr));
    let mut command = home.command(&["login", "jd", "--browser", "--no-browser"]);
    command.env("JD_SECRET", "cliLegacy/Secret+");
    let mut login = Running::start(command);
    let url = login
        .until(|line| url_in(line).filter(|u| u.contains("oauth_allow")))
        .await;

    // Joind.in asks the user to log in on its site first, then to allow the application.
    let browser = Browser::start().await;
    browser.client.goto(&url).await.unwrap();
    browser.type_into("input[name='user']", &fx.username).await;
    browser.type_into("input[name='pass']", &fx.password).await;
    browser.click("input[name='sub']").await;
    browser.click("input[value='allow']").await;
    browser.click("input[name='sub']").await;
    browser.wait_for_text("close this tab").await;
    browser.close().await;

    let out = login.finish().await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&fx.username),
        "{}",
        text(&out.stderr)
    );
    let token = home
        .run_with(
            &["token", "jd"],
            &[("JD_SECRET", "cliLegacy/Secret+")],
            None,
        )
        .await;
    assert!(token.status.success(), "{}", text(&token.stderr));
    assert!(emulator.token_exists(text(&token.stdout).trim()));
}

#[tokio::test]
async fn joindin_password_login_from_standard_input() {
    let emulator = JoindinEmulator::start().unwrap();
    let fx = emulator.fixtures().clone();
    let home = Home::new();
    let added = home
        .run(&[
            "profile",
            "add",
            "jd",
            "--provider",
            "joindin",
            "--client-id",
            &fx.client_id,
            "--client-secret-stdin",
            "--base-url",
            &emulator.base_url(),
            "--username",
            &fx.username,
        ])
        .await;
    assert!(added.status.success(), "{}", text(&added.stderr));
    // The client secret is the first line of standard input, the password the second.
    let input = format!("{}\n{}\n", fx.client_secret, fx.password);
    let out = home
        .run_with(&["login", "jd", "--password-stdin"], &[], Some(&input))
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = home
        .run_with(
            &["token", "jd"],
            &[],
            Some(&format!("{}\n", fx.client_secret)),
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(emulator.token_exists(text(&out.stdout).trim()));
}

/// Every file under `dir`, however deep.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// 32 random bytes in a private file: a sealing key.
fn write_key(path: &std::path::Path) {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut key)
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, &key))
        .unwrap();
}

#[tokio::test]
async fn a_sealed_store_keeps_every_token_out_of_its_files() {
    use grantkit::store::encrypted::{EncryptedTokenStore, Keyring, SealingKey};
    use grantkit::store::file::FileTokenStore;
    let home = Home::new();
    let key_file = home.tmp().join("store.key");
    write_key(&key_file);
    let dir = home.data().join("sealed");
    let emulator = joinme_with_args(
        &[&home],
        &[
            "--store",
            dir.to_str().unwrap(),
            "--store-key-file",
            key_file.to_str().unwrap(),
            "--store-key-id",
            "laptop-1",
        ],
    )
    .await;
    login(&home).await;
    let first = home.run_with(&["token", "jm"], &ENV, None).await;
    assert!(first.status.success(), "{}", text(&first.stderr));

    // The test reads the grant as the command does, then makes it due for a refresh.
    let sealed = EncryptedTokenStore::new(
        FileTokenStore::open(&dir).await.unwrap(),
        Keyring::new(SealingKey::from_file("laptop-1", &key_file).unwrap()),
    );
    let keys = sealed.list(&KeyFilter::provider("joinme")).await.unwrap();
    let first_refresh = sealed
        .get(&keys[0])
        .await
        .unwrap()
        .unwrap()
        .value
        .refresh_token;
    let mut secrets = vec![expire_token_in(&sealed).await];
    secrets.extend(first_refresh.map(|t| t.expose_secret().to_owned()));
    let refreshed = home.run_with(&["token", "jm"], &ENV, None).await;
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
    let access = text(&refreshed.stdout).trim().to_owned();
    assert_ne!(access, secrets[0], "the expired token was refreshed");
    let stored = sealed.get(&keys[0]).await.unwrap().unwrap().value;
    assert_eq!(stored.access_token.expose_secret(), access);
    secrets.push(access);
    secrets.extend(
        stored
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
    );
    secrets.sort();
    secrets.dedup();
    assert!(
        secrets.len() >= 3,
        "an old and a new access token, and the refresh token(s)"
    );

    let files = files_under(&dir);
    assert!(!files.is_empty());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a token in clear in {}",
                file.display()
            );
        }
    }
    let status = home.run_with(&["status", "jm"], &ENV, None).await;
    assert!(
        text(&status.stdout).contains("sealed with key `laptop-1`"),
        "{}",
        text(&status.stdout)
    );
    let listed = home.run(&["profile", "list", "--json"]).await;
    assert!(
        text(&listed.stdout).contains("key `laptop-1` from file"),
        "{}",
        text(&listed.stdout)
    );

    // Another key under the same id opens nothing, and says so without a token; under a
    // new id, the error names the key the records need.
    write_key(&key_file);
    let refused = home.run_with(&["token", "jm"], &ENV, None).await;
    let said = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("does not open"), "{said}");
    assert!(said.contains("grantkit profile list"), "{said}");
    let base_url = emulator.base_url();
    let renamed = home
        .run(&joinme_profile(
            &base_url,
            "http://127.0.0.1:9/callback",
            &[
                "--store",
                dir.to_str().unwrap(),
                "--store-key-file",
                key_file.to_str().unwrap(),
                "--store-key-id",
                "laptop-2",
            ],
        ))
        .await;
    assert!(renamed.status.success(), "{}", text(&renamed.stderr));
    let unknown = home.run_with(&["token", "jm"], &ENV, None).await;
    let named = text(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(named.contains("sealed with key `laptop-1`"), "{named}");
    for out in [&refused, &unknown] {
        for secret in &secrets {
            assert!(!text(&out.stderr).contains(secret.as_str()));
            assert!(!text(&out.stdout).contains(secret.as_str()));
        }
    }
    // No key at all: refused before the store is touched.
    std::fs::remove_file(&key_file).unwrap();
    let missing = home.run_with(&["token", "jm"], &ENV, None).await;
    let said = text(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{said}");
    assert!(said.contains("cannot open the key file"), "{said}");
}

#[tokio::test]
async fn store_key_options_are_checked_and_paths_kept_absolute() {
    let home = Home::new();
    let add = |extra: &[&str]| {
        home.command(&joinme_profile(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/callback",
            extra,
        ))
    };
    // Relative paths are resolved where the profile is added, not where it is used.
    let out = add(&["--store", "tokens", "--store-key-file", "store.key"])
        .current_dir(home.tmp())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = std::fs::read_to_string(home.config()).unwrap();
    for path in [home.tmp().join("tokens"), home.tmp().join("store.key")] {
        assert!(
            config.contains(&format!("\"{}\"", path.display())),
            "{config}"
        );
    }
    // An id without a key, an id that cannot name a key, two sources: usage errors.
    for extra in [
        &["--store-key-id", "k1"][..],
        &["--store-key-env", "K", "--store-key-id", "not valid"][..],
        &["--store-key-env", "K", "--store-key-file", "/k"][..],
    ] {
        let out = add(extra).output().await.unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
}

/// Marks the stored access token of `jm` as expired, as time would.
async fn expire_stored_token(home: &Home) -> String {
    let store = grantkit::store::file::FileTokenStore::open(home.store())
        .await
        .unwrap();
    expire_token_in(&store).await
}

async fn expire_token_in(store: &dyn grantkit::TokenStore) -> String {
    let keys = store.list(&KeyFilter::provider("joinme")).await.unwrap();
    let stored = store.get(&keys[0]).await.unwrap().unwrap();
    let mut tokens = stored.value;
    tokens.expires_at = Some(SystemTime::now() - Duration::from_secs(1));
    store
        .put(&keys[0], &tokens, Precondition::Version(stored.version))
        .await
        .unwrap();
    tokens.access_token.expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_token_processes_on_an_expired_token_make_one_refresh() {
    let home = Home::new();
    let emulator = joinme(&home).await;
    login(&home).await;
    let old = expire_stored_token(&home).await;
    let before = emulator.count(JoinMeEndpoint::Token);

    // All fifty started before any is awaited.
    let mut children = Vec::new();
    for _ in 0..50 {
        let mut command = home.command(&["token", "jm"]);
        command
            .envs(ENV)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push(command.spawn().unwrap());
    }
    let mut outputs = Vec::new();
    for child in children {
        outputs.push(child.wait_with_output().await.unwrap());
    }
    let mut printed = std::collections::BTreeSet::new();
    for out in outputs {
        assert!(out.status.success(), "{}", text(&out.stderr));
        printed.insert(text(&out.stdout));
    }
    assert_eq!(printed.len(), 1, "all fifty print the same token");
    assert_ne!(printed.first().unwrap().trim(), old, "a new token");
    assert_eq!(
        emulator.count(JoinMeEndpoint::Token) - before,
        1,
        "one refresh for fifty processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_machines_share_one_refresh_through_a_redis_cluster() {
    use grantkit_store_redis::testing::TestRedis;
    let redis = tokio::task::spawn_blocking(TestRedis::start_cluster)
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("{err}"));
    let urls = redis.topology().urls().join(",");
    let (first, second) = (Home::new(), Home::new());
    let emulator = joinme_with_store(&[&first, &second], Some(&urls)).await;
    login(&first).await;
    let token = |home: &Home| {
        let mut command = home.command(&["token", "jm"]);
        command
            .envs(ENV)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let on_second = token(&second).wait_with_output().await.unwrap();
    assert!(on_second.status.success(), "{}", text(&on_second.stderr));

    let store = grantkit::store::redis::RedisTokenStore::connect(&urls)
        .await
        .unwrap();
    let old = expire_token_in(&store).await;
    assert_eq!(
        text(&on_second.stdout).trim(),
        old,
        "the grant the first machine stored"
    );
    let before = emulator.count(JoinMeEndpoint::Token);
    let children: Vec<_> = (0..20)
        .map(|i| token(if i % 2 == 0 { &first } else { &second }))
        .collect();
    let mut printed = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        printed.insert(text(&out.stdout));
    }
    assert_eq!(
        printed.len(),
        1,
        "every process on both machines prints the same token"
    );
    assert_ne!(printed.first().unwrap().trim(), old);
    assert_eq!(
        emulator.count(JoinMeEndpoint::Token) - before,
        1,
        "one refresh in all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_machines_share_one_refresh_through_postgres() {
    use grantkit_store_sql::testing::{TestPostgres, random_prefix};
    let postgres = tokio::task::spawn_blocking(TestPostgres::shared)
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("{err}"));
    // A database of its own: the command uses the default table names.
    let database = random_prefix().trim_end_matches('_').to_owned();
    let admin = sqlx::PgPool::connect(postgres.url()).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&admin)
        .await
        .unwrap();
    let url = postgres
        .url()
        .rsplit_once('/')
        .map(|(server, _)| format!("{server}/{database}"))
        .unwrap();
    let (first, second) = (Home::new(), Home::new());
    let emulator = joinme_with_store(&[&first, &second], Some(&url)).await;
    login(&first).await;
    let store = grantkit::store::sql::SqlTokenStore::connect(&url)
        .await
        .unwrap();
    let old = expire_token_in(&store).await;
    let before = emulator.count(JoinMeEndpoint::Token);
    let children: Vec<_> = (0..20)
        .map(|i| {
            let home = if i % 2 == 0 { &first } else { &second };
            let mut command = home.command(&["token", "jm"]);
            command
                .envs(ENV)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    let mut printed = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        printed.insert(text(&out.stdout));
    }
    assert_eq!(printed.len(), 1, "every process prints the same token");
    assert_ne!(printed.first().unwrap().trim(), old);
    assert_eq!(
        emulator.count(JoinMeEndpoint::Token) - before,
        1,
        "one refresh in all"
    );
}

/// Every process's command line, as `ps` shows it.
fn command_lines() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .collect()
}

#[tokio::test]
async fn curl_and_exec_keep_the_token_out_of_every_command_line() {
    let home = Home::new();
    let emulator = joinme(&home).await;
    login(&home).await;
    let token = text(&home.run_with(&["token", "jm"], &ENV, None).await.stdout)
        .trim()
        .to_owned();
    // A slow API, so curl is still running while this looks at every process.
    emulator.inject(FaultRule::on(
        JoinMeEndpoint::Api,
        Fault::Latency(Duration::from_millis(1500)),
    ));
    let user_url = format!("{}/v1/user", emulator.base_url());
    let mut command = home.command(&["curl", "jm", "--", "-s", "-f", &user_url]);
    command.envs(ENV).stdout(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    let mut saw_curl = false;
    let watching = async {
        loop {
            for line in command_lines() {
                assert!(
                    !line.contains(&token),
                    "a command line shows the token: {line}"
                );
                saw_curl |= line.starts_with("curl") && line.contains(&user_url);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let out = tokio::select! {
        out = child.wait_with_output() => out.unwrap(),
        () = watching => unreachable!("the watcher never ends"),
    };
    assert!(saw_curl, "looked while curl ran");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = text(&out.stdout);
    assert!(body.contains(&emulator.fixtures().email), "{body}");

    let out = home
        .run_with(
            &[
                "exec",
                "jm",
                "--",
                "sh",
                "-c",
                "test \"$GRANTKIT_ACCESS_TOKEN\" = \"$EXPECTED\" && echo same",
            ],
            &[ENV[0], ("EXPECTED", &token)],
            None,
        )
        .await;
    assert_eq!(text(&out.stdout).trim(), "same", "{}", text(&out.stderr));
    let code = home
        .run_with(&["exec", "jm", "--", "sh", "-c", "exit 7"], &ENV, None)
        .await;
    assert_eq!(code.status.code(), Some(7), "exec exits as its command did");
}

#[tokio::test]
async fn a_terminated_curl_leaves_no_token_behind() {
    let home = Home::new();
    let emulator = joinme(&home).await;
    login(&home).await;
    emulator.inject(FaultRule::on(
        JoinMeEndpoint::Api,
        Fault::Latency(Duration::from_secs(30)),
    ));
    let user_url = format!("{}/v1/user", emulator.base_url());
    let mut command = home.command(&["curl", "jm", "--", "-s", &user_url]);
    command.envs(ENV);
    let mut child = command.spawn().unwrap();
    // Wait until curl runs with its private config file.
    let config_written = async {
        loop {
            let files: Vec<_> = std::fs::read_dir(home.tmp()).unwrap().flatten().collect();
            let curl_running = command_lines()
                .iter()
                .any(|line| line.starts_with("curl") && line.contains(&user_url));
            if !files.is_empty() && curl_running {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), config_written)
        .await
        .expect("curl started");
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("grantkit ends once curl has")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "exits as curl did: by SIGTERM"
    );
    let left: Vec<_> = std::fs::read_dir(home.tmp()).unwrap().flatten().collect();
    assert!(left.is_empty(), "the private config file is gone: {left:?}");
}

#[tokio::test]
async fn exit_codes_say_what_to_do_and_json_errors_are_structured() {
    let home = Home::new();
    let emulator = joinme(&home).await;

    let out = home.run_with(&["token", "jm"], &ENV, None).await;
    assert_eq!(out.status.code(), Some(3), "not logged in");
    assert!(
        text(&out.stderr).contains("grantkit login jm"),
        "{}",
        text(&out.stderr)
    );

    let out = home.run_with(&["token", "nosuch"], &ENV, None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("grantkit profile add nosuch"));

    let out = home.run(&["token", "jm"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "the secret's variable is not set"
    );
    assert!(text(&out.stderr).contains("JM_SECRET"));

    let out = home.run(&["token"]).await;
    assert_eq!(out.status.code(), Some(2), "clap's usage error");

    login(&home).await;
    expire_stored_token(&home).await;
    emulator
        .inject(FaultRule::on(JoinMeEndpoint::Token, Fault::ServerError { status: 503 }).always());
    let out = home.run_with(&["token", "jm", "--json"], &ENV, None).await;
    assert_eq!(out.status.code(), Some(5), "the provider is down");
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "unavailable");
    assert_eq!(error["error"]["exit_code"], 5);
    assert!(
        error["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("try again")
    );
    assert!(
        !text(&out.stderr).contains('\u{1b}'),
        "no colour off a terminal"
    );
}

#[tokio::test]
async fn no_secret_in_status_errors_or_help() {
    let home = Home::new();
    let emulator = joinme(&home).await;
    login(&home).await;
    let store = grantkit::store::file::FileTokenStore::open(home.store())
        .await
        .unwrap();
    let keys = store.list(&KeyFilter::provider("joinme")).await.unwrap();
    let tokens = store.get(&keys[0]).await.unwrap().unwrap().value;
    let secrets = [
        JOINME_SECRET.to_owned(),
        tokens.access_token.expose_secret().to_owned(),
        tokens.refresh_token.unwrap().expose_secret().to_owned(),
        emulator.fixtures().password.clone(),
    ];
    let mut outputs = Vec::new();
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["status", "jm", "--json"],
        vec!["profile", "list"],
        vec!["profile", "list", "--json"],
        vec!["refresh", "jm"],
        vec!["refresh", "jm", "--json"],
        vec!["token", "jm", "--account", "nobody@example.com"],
        vec!["token", "nosuch", "--json"],
        vec!["logout", "jm", "--account", "nobody@example.com"],
        vec!["--help"],
        vec!["login", "--help"],
        vec!["profile", "add", "--help"],
        vec!["curl", "--help"],
        vec!["exec", "--help"],
        vec!["status", "--help"],
    ] {
        let out = home.run_with(&args, &ENV, None).await;
        outputs.push((args, text(&out.stdout) + &text(&out.stderr)));
    }
    for (args, output) in &outputs {
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "`grantkit {}` printed a secret:\n{output}",
                args.join(" ")
            );
        }
    }
    let config = std::fs::read_to_string(home.config()).unwrap();
    assert!(
        !config.contains(JOINME_SECRET),
        "the profile names where the secret is, not it"
    );
    let help = &outputs
        .iter()
        .find(|(a, _)| a == &vec!["--help"])
        .unwrap()
        .1;
    for code in ["0  success", "3  log in", "5  unavailable"] {
        assert!(
            help.contains(code),
            "--help documents exit code {code}: {help}"
        );
    }
}

#[tokio::test]
async fn logout_says_what_happened_at_the_provider() {
    let home = Home::new();
    let emulator = joinme(&home).await;
    login(&home).await;
    let out = home.run_with(&["logout", "jm", "--json"], &ENV, None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["outcome"], "deleted");
    assert_eq!(
        result["remote"], "access_expired",
        "join.me's Expire Access"
    );
    let out = home.run_with(&["token", "jm"], &ENV, None).await;
    assert_eq!(out.status.code(), Some(3));
    let _ = emulator;
}

#[tokio::test]
async fn profiles_are_edited_without_touching_the_file() {
    let home = Home::new();
    let add = |name: &'static str| {
        let home = &home;
        async move {
            home.run(&[
                "profile",
                "add",
                name,
                "--provider",
                "standard",
                "--client-id",
                "c",
                "--client-secret-file",
                "/run/secrets/x",
                "--issuer",
                "https://as.example",
            ])
            .await
        }
    };
    assert!(add("one").await.status.success());
    let again = add("one").await;
    assert_eq!(again.status.code(), Some(2), "no silent replacement");
    assert!(text(&again.stderr).contains("--force"));
    let list = home.run(&["profile", "list", "--json"]).await;
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed[0]["name"], "one");
    assert_eq!(listed[0]["client_secret"], "file /run/secrets/x");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(home.config()).unwrap().permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        home.run(&["profile", "remove", "one"])
            .await
            .status
            .success()
    );
    let out = home.run(&["profile", "remove", "one"]).await;
    assert_eq!(out.status.code(), Some(2));
}
