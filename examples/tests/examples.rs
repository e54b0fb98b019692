//! Every example, run as a user runs it: a real process, configured by its environment,
//! against the emulators (or the independent authorization server, or a real Redis), with
//! this test playing the user's browser. Each runs twice: the second run uses the grant the
//! first one stored.

use grantkit_emulator::{AutoConsent, JoinMeApp, JoinMeEmulator, JoinMeEndpoint, JoindinEmulator};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const PROMPT: &str = "Open this page to sign in: ";
/// How long a line of an example's output may take.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// A running example and its output, line by line.
struct Run {
    child: Child,
    out: Lines<BufReader<ChildStdout>>,
}

impl Run {
    fn start(program: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(program);
        command
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the example starts");
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, out }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(LINE_TIMEOUT, self.out.next_line())
            .await
            .expect("the example answers in time")
            .expect("its output is readable")
            .expect("the example printed a line before ending")
    }

    async fn stdin(&mut self, text: &str) {
        let mut stdin = self.child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).await.unwrap();
    }

    /// The rest of the output, and the exit status.
    async fn finish(mut self) -> (Vec<String>, std::process::ExitStatus) {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout(LINE_TIMEOUT, self.out.next_line())
            .await
            .expect("in time")
        {
            lines.push(line);
        }
        let status = tokio::time::timeout(LINE_TIMEOUT, self.child.wait())
            .await
            .expect("the example ends")
            .unwrap();
        (lines, status)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A browser that follows redirects, as a user's does.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A join.me emulator that approves at once, with an application whose Callback URL is a
/// free loopback port; returns the emulator and the example's join.me configuration.
fn joinme() -> (JoinMeEmulator, Vec<(&'static str, String)>) {
    let emulator = JoinMeEmulator::builder().start().unwrap();
    let fx = emulator.fixtures().clone();
    emulator.set_auto_consent(Some(AutoConsent::Approve(fx.email.clone())));
    let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
    let app = JoinMeApp::new(
        "examplekey0123456789abcd",
        "ExSecret42",
        redirect_uri.clone(),
    );
    emulator.add_app(app);
    let env = vec![
        ("JOINME_CLIENT_ID", "examplekey0123456789abcd".to_owned()),
        ("JOINME_CLIENT_SECRET", "ExSecret42".to_owned()),
        ("JOINME_REDIRECT_URI", redirect_uri),
        ("JOINME_BASE_URL", emulator.base_url()),
    ];
    (emulator, env)
}

/// Runs a sign-in example: reads the URL it prints, plays the browser, and returns the
/// output after it.
async fn sign_in(program: &str, env: &[(&str, String)]) -> Vec<String> {
    let mut run = Run::start(program, env);
    let first = run.line().await;
    let url = first
        .strip_prefix(PROMPT)
        .unwrap_or_else(|| panic!("expected the sign-in URL, got {first}"));
    let landed = browser().get(url).send().await.expect("the browser step");
    assert!(landed.status().is_success(), "{}", landed.status());
    assert!(landed.text().await.unwrap().contains("close this tab"));
    let (lines, status) = run.finish().await;
    assert!(status.success(), "{program} failed: {lines:?}");
    lines
}

#[tokio::test]
async fn joinme_code_flow_signs_in_once_then_uses_the_stored_grant() {
    let (emulator, mut env) = joinme();
    let store = tempfile::tempdir().unwrap();
    env.push((
        "GRANTKIT_STORE_DIR",
        store.path().join("tokens").display().to_string(),
    ));
    let program = env!("CARGO_BIN_EXE_joinme-code-flow");
    let email = emulator.fixtures().email.clone();

    let lines = sign_in(program, &env).await;
    assert_eq!(lines, [format!("Signed in as {email}")]);

    let (lines, status) = Run::start(program, &env).finish().await;
    assert!(status.success());
    assert_eq!(
        lines,
        [format!("Signed in as {email}")],
        "no sign-in the second time"
    );
    assert_eq!(
        emulator.count(JoinMeEndpoint::Token),
        1,
        "one code exchange in all"
    );
}

#[tokio::test]
async fn joindin_password_reads_the_password_from_standard_input_once() {
    let emulator = JoindinEmulator::start().unwrap();
    let fx = emulator.fixtures().clone();
    let store = tempfile::tempdir().unwrap();
    let env = [
        ("JOINDIN_CLIENT_ID", fx.client_id.clone()),
        ("JOINDIN_CLIENT_SECRET", fx.client_secret.clone()),
        ("JOINDIN_USERNAME", fx.username.clone()),
        ("JOINDIN_BASE_URL", emulator.base_url()),
        (
            "GRANTKIT_STORE_DIR",
            store.path().join("tokens").display().to_string(),
        ),
    ];
    let program = env!("CARGO_BIN_EXE_joindin-password");

    let mut run = Run::start(program, &env);
    run.stdin(&format!("{}\n", fx.password)).await;
    let (lines, status) = run.finish().await;
    assert!(status.success(), "{lines:?}");
    assert_eq!(lines[0], format!("Signed in as user {}", fx.user_id));
    assert!(lines.len() > 1 && lines[1].starts_with("- "), "{lines:?}");

    // The second run asks for nothing: its standard input is closed at once.
    let run = Run::start(program, &env);
    let (lines, status) = run.finish().await;
    assert!(status.success(), "{lines:?}");
    assert_eq!(lines[0], format!("Signed in as user {}", fx.user_id));
}

#[tokio::test]
async fn standard_discovery_signs_in_with_pkce_through_the_loopback_helper() {
    use grantkit_standard::testing::{AuthServer, AuthServerOptions, BASIC_CLIENT, TEST_ACCOUNT};
    let server = AuthServer::start(AuthServerOptions::default())
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let store = tempfile::tempdir().unwrap();
    let env = [
        ("OAUTH_ISSUER", server.issuer().to_owned()),
        ("OAUTH_CLIENT_ID", BASIC_CLIENT.id.to_owned()),
        ("OAUTH_CLIENT_SECRET", BASIC_CLIENT.secret.to_owned()),
        ("OAUTH_SCOPES", "openid read".to_owned()),
        (
            "GRANTKIT_STORE_DIR",
            store.path().join("tokens").display().to_string(),
        ),
    ];
    let program = env!("CARGO_BIN_EXE_standard-discovery");

    let mut run = Run::start(program, &env);
    let first = run.line().await;
    let url = first.strip_prefix(PROMPT).expect("the sign-in URL");
    server
        .authorize_and_deliver(url, grantkit_conformance::Decision::Approve)
        .await
        .expect("the browser step");
    let (lines, status) = run.finish().await;
    assert!(status.success(), "{lines:?}");
    assert_eq!(
        lines,
        [format!("Signed in as {TEST_ACCOUNT}; scopes: openid read")]
    );

    let (lines, status) = Run::start(program, &env).finish().await;
    assert!(status.success(), "{lines:?}");
    assert_eq!(lines.len(), 1, "no sign-in the second time: {lines:?}");
}

#[tokio::test]
async fn redis_shared_processes_make_one_refresh_between_them() {
    use grantkit_store_redis::testing::RedisServer;
    let redis = RedisServer::start().unwrap_or_else(|err| panic!("{err}"));
    let (emulator, mut env) = joinme();
    env.push(("GRANTKIT_REDIS_URL", redis.url()));
    let program = env!("CARGO_BIN_EXE_redis-shared");
    let email = emulator.fixtures().email.clone();
    assert_eq!(
        sign_in(program, &env).await,
        [format!("Signed in as {email}")]
    );

    // A day later at join.me: the access token is stale there, though not by the clock of
    // the processes, so each meets join.me's refusal and wants a refresh.
    emulator.clock().advance(Duration::from_secs(25 * 60 * 60));
    let before = emulator.count(JoinMeEndpoint::Token);
    let runs: Vec<Run> = (0..4).map(|_| Run::start(program, &env)).collect();
    for run in runs {
        let (lines, status) = run.finish().await;
        assert!(status.success(), "{lines:?}");
        assert_eq!(lines, [format!("Signed in as {email}")]);
    }
    assert_eq!(
        emulator.count(JoinMeEndpoint::Token) - before,
        1,
        "one refresh for four processes"
    );
}

#[tokio::test]
async fn axum_service_completes_a_sign_in_on_another_instance() {
    use grantkit_store_redis::testing::RedisServer;
    let redis = RedisServer::start().unwrap_or_else(|err| panic!("{err}"));
    let (emulator, mut env) = joinme();
    env.push(("GRANTKIT_REDIS_URL", redis.url()));
    // Instance B owns the registered callback; instance A is where the user starts.
    let callback_port = env
        .iter()
        .find(|(k, _)| *k == "JOINME_REDIRECT_URI")
        .map(|(_, v)| url::Url::parse(v).unwrap().port().unwrap())
        .unwrap();
    let program = env!("CARGO_BIN_EXE_axum-service");
    let mut a_env = env.clone();
    a_env.push(("LISTEN", "127.0.0.1:0".to_owned()));
    let mut b_env = env.clone();
    b_env.push(("LISTEN", format!("127.0.0.1:{callback_port}")));
    let mut a = Run::start(program, &a_env);
    let mut b = Run::start(program, &b_env);
    let a_url = a.line().await.replace("Listening on ", "");
    let b_url = b.line().await.replace("Listening on ", "");
    assert!(b_url.ends_with(&format!(":{callback_port}")));

    let step = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = step.get(format!("{a_url}/login")).send().await.unwrap();
    assert!(login.status().is_redirection(), "{}", login.status());
    let authorize = login.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&emulator.authorize_url()));
    let consented = step.get(&authorize).send().await.unwrap();
    let callback = consented.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&b_url),
        "the registered callback is on instance B"
    );
    let signed_in = step.get(&callback).send().await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let email = emulator.fixtures().email.clone();
    assert_eq!(
        signed_in.text().await.unwrap(),
        format!("Signed in as {email}\n")
    );

    for instance in [&a_url, &b_url] {
        let mut me = url::Url::parse(&format!("{instance}/me")).unwrap();
        me.query_pairs_mut().append_pair("account", &email);
        let me = step.get(me).send().await.unwrap();
        assert_eq!(me.status(), 200);
        assert!(me.text().await.unwrap().contains(&email));
    }
    let stranger = step
        .get(format!("{a_url}/me?account=nobody%40example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 401, "not signed in");
}
