//! Support for the Explorer browser test: Debian's Chromium, the Explorer
//! served from this process, and a small page model of the Explorer's UI.

use headless_chrome::browser::tab::point::Point;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use leasehold_model::system::ModelCfg;
use serde::Deserialize;
use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Debian's Chromium, installed with apt-get on first use if missing. One
/// install per test process, however many cases ask.
pub fn chromium() -> PathBuf {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let path = Path::new(CHROMIUM);
        if path.exists() {
            return Ok(path.to_path_buf());
        }
        eprintln!("{CHROMIUM} is missing: installing Debian's chromium with apt-get");
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        let install = ["install", "-y", "-q", "chromium", "chromium-driver"];
        // A fresh machine may have no package lists yet: update, then retry.
        let installed = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
        if !installed {
            return Err(format!(
                "the Explorer test needs Debian's Chromium at {CHROMIUM} and could not install \
                 it; run as root: apt-get update && apt-get install -y chromium chromium-driver"
            ));
        }
        if path.exists() {
            Ok(path.to_path_buf())
        } else {
            Err(format!(
                "apt-get installed chromium but {CHROMIUM} is still missing"
            ))
        }
    });
    match ready {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// A free port on 127.0.0.1, chosen by the kernel.
fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address")
}

/// The Explorer for one configuration, served from this process, and a
/// headless Chromium to look at it.
pub struct Explorer {
    pub url: String,
    browser: Browser,
}

impl Explorer {
    /// Serves `cfg` on a free loopback port, as `leasehold explore` does
    /// (with `run_checker`, as with `--bug`), and launches the browser.
    pub fn start(cfg: ModelCfg, run_checker: bool) -> Explorer {
        let addr = free_addr();
        let served = addr.to_string();
        // The Explorer's server never returns; the thread ends with the
        // test process.
        thread::spawn(move || {
            if let Err(e) = leasehold_checks::explore::serve(cfg, &served, run_checker) {
                panic!("explore: {e}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the Explorer did not listen on {addr}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Explorer {
            url: format!("http://{addr}/"),
            browser: launch(),
        }
    }

    /// Opens the Explorer in a new tab and waits until its script has
    /// listed the initial state.
    pub fn open(&self) -> Arc<Tab> {
        let tab = self.browser.new_tab().expect("open a tab");
        tab.set_default_timeout(Duration::from_secs(20));
        // Not `wait_until_navigated`: a page served from this machine can
        // finish loading before headless_chrome starts watching for that,
        // and the wait then never ends. The page itself tells when it is
        // ready.
        tab.navigate_to(&self.url)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url));
        Page::new(&tab, 20).wait_for(
            |v| v.next.iter().any(|n| n == "Init 0"),
            "the Explorer to list the initial state",
        );
        tab
    }

    /// Saves the page as a PNG in `$EXPLORER_SCREENSHOTS`, when set.
    pub fn screenshot(&self, tab: &Tab, name: &str) {
        let Some(dir) = std::env::var_os("EXPLORER_SCREENSHOTS") else {
            return;
        };
        let png = tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("capture a screenshot");
        let path = Path::new(&dir).join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
    }
}

/// Headless Chromium with the flags this machine needs: no sandbox (we run
/// as root), no GPU, and nothing that reaches for the network (there is
/// none, and waiting for it stalls start-up). headless_chrome gives each
/// launch a fresh temporary --user-data-dir and removes it afterwards.
fn launch() -> Browser {
    let args: Vec<&OsStr> = [
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(chromium()))
        .headless(true)
        .sandbox(false)
        .enable_gpu(false)
        .window_size(Some((1900, 1300)))
        .args(args)
        .idle_browser_timeout(Duration::from_secs(60))
        .build()
        .expect("launch options");
    Browser::new(options).expect("launch headless Chromium")
}

/// What the Explorer's page shows, read from its DOM.
#[derive(Debug, Deserialize)]
pub struct View {
    /// "Path of Actions": Pre-init, Init 0, then each action taken.
    pub path: Vec<String>,
    /// "Next Action Choices".
    pub next: Vec<String>,
    /// Global property list, each with its verdict.
    pub properties: Vec<String>,
    /// Per-state property list (shown with "Current state?").
    pub current_properties: Vec<String>,
    /// The right-hand state panel.
    pub state: String,
    /// The status says the checker is done.
    pub done: bool,
}

const READ_VIEW: &str = r#"(() => {
  const norm = (e) => e.textContent.replace(/\s+/g, ' ').trim();
  const after = (tag, title) => {
    const h = Array.from(document.querySelectorAll(tag)).find((h) => norm(h) === title);
    const list = h && h.nextElementSibling;
    return list ? Array.from(list.querySelectorAll(':scope > li')).map(norm) : [];
  };
  const state = document.querySelector('section.main-flex-right > div.font-small');
  return JSON.stringify({
    path: after('h2', 'Path of Actions'),
    next: after('h2', 'Next Action Choices'),
    properties: after('h3', 'Global'),
    current_properties: after('h3', 'Current state'),
    state: state ? state.textContent : '',
    done: Array.from(document.querySelectorAll('nav li'))
      .some((li) => norm(li) === 'Progress: Done'),
  });
})()"#;

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The Explorer's page in one tab, with bounded waits.
pub struct Page<'a> {
    tab: &'a Tab,
    timeout: Duration,
}

impl<'a> Page<'a> {
    pub fn new(tab: &'a Tab, timeout_s: u64) -> Self {
        Page {
            tab,
            timeout: Duration::from_secs(timeout_s),
        }
    }

    pub fn view(&self) -> View {
        let value = self
            .tab
            .evaluate(READ_VIEW, false)
            .expect("read the page")
            .value
            .expect("the page answers");
        let json = value.as_str().expect("a JSON string");
        serde_json::from_str(json).expect("the page's view")
    }

    /// Polls the page until `done` holds; panics with the last view after
    /// the timeout.
    pub fn wait_for(&self, done: impl Fn(&View) -> bool, what: &str) -> View {
        let deadline = Instant::now() + self.timeout;
        loop {
            let view = self.view();
            if done(&view) {
                return view;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}; the page shows {view:#?}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for_path_len(&self, n: usize) -> View {
        self.wait_for(|v| v.path.len() == n, &format!("a path of {n} entries"))
    }

    pub fn wait_for_state(&self, done: impl Fn(&str) -> bool) -> String {
        self.wait_for(|v| done(&v.state), "the state panel").state
    }

    pub fn wait_for_property(&self, done: impl Fn(&str) -> bool) -> String {
        let view = self.wait_for(
            |v| v.properties.iter().any(|p| done(p)),
            "a property verdict",
        );
        view.properties.into_iter().find(|p| done(p)).unwrap()
    }

    /// Clicks the link in a list whose text `matches`, waiting until the
    /// list shows it. The page's script finds the link by its text, scrolls
    /// it into view and reports where it is, in one round trip (each
    /// DevTools call costs about 0.1 s here); then the mouse clicks there,
    /// as a person would, and the page's own handlers follow the link.
    fn click_link(&self, xpath: &str, matches: impl Fn(&str) -> bool, what: &str) {
        let deadline = Instant::now() + self.timeout;
        let links_js = format!(
            r#"JSON.stringify((() => {{
                const found = document.evaluate("{xpath}", document, null,
                    XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
                const out = [];
                for (let i = 0; i < found.snapshotLength; i++) {{
                    out.push(found.snapshotItem(i).textContent.replace(/\s+/g, ' ').trim());
                }}
                return out;
            }})())"#
        );
        loop {
            let texts: Vec<String> = self.eval_json(&links_js).unwrap_or_default();
            if let Some(i) = texts.iter().position(|t| matches(t)) {
                let at_js = format!(
                    r#"JSON.stringify((() => {{
                        const a = document.evaluate("({xpath})[{n}]", document, null,
                            XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
                        a.scrollIntoView({{block: 'center', behavior: 'instant'}});
                        // The first line box: a long action wraps, and the
                        // middle of its bounding box can fall between lines.
                        const r = a.getClientRects()[0];
                        const x = r.left + Math.min(r.width / 2, 40), y = r.top + r.height / 2;
                        const hit = document.elementFromPoint(x, y);
                        return hit && a.contains(hit) ? [x, y] : null;
                    }})())"#,
                    n = i + 1
                );
                // Null while something covers the link or the list is
                // being redrawn: look again.
                if let Some(Some([x, y])) = self.eval_json::<Option<[f64; 2]>>(&at_js) {
                    self.tab
                        .click_point(Point { x, y })
                        .unwrap_or_else(|e| panic!("click {what}: {e}"));
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!("no link {what}; the page shows {:#?}", self.view());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Evaluates a script that returns a JSON string, and parses it.
    fn eval_json<T: serde::de::DeserializeOwned>(&self, js: &str) -> Option<T> {
        let value = self.tab.evaluate(js, false).ok()?.value?;
        serde_json::from_str(value.as_str()?).ok()
    }

    /// Clicks the next action named `action`.
    pub fn click_next(&self, action: &str) {
        let want = normalize(action);
        self.click_link(
            "//h2[normalize-space()='Next Action Choices']/following-sibling::ul[1]/li/a",
            |t| t == want,
            &format!("to the next action {want:?}"),
        );
    }

    /// Clicks the global property whose text contains `name`: a discovery
    /// is a link to its path.
    pub fn click_property(&self, name: &str) {
        self.click_link(
            "//h3[normalize-space()='Global']/following-sibling::ul[1]/li/a",
            |t| t.contains(name),
            &format!("for the property {name:?}"),
        );
    }

    /// Ticks the checkbox labelled `label` ("Complete State?", ...).
    pub fn check_box(&self, label: &str) {
        let xpath = format!("//label[contains(normalize-space(), '{label}')]/input");
        let input = self
            .tab
            .wait_for_xpath(&xpath)
            .unwrap_or_else(|e| panic!("no checkbox {label:?}: {e}"));
        input
            .click()
            .unwrap_or_else(|e| panic!("click the checkbox {label:?}: {e}"));
    }
}

/// Splits the complete state's `actor_states` list into one text per node
/// (master, chunkservers, clients in id order), as `NodeState`'s `{:#?}`
/// prints them.
pub fn node_blocks(state: &str) -> Vec<String> {
    let mut blocks: Vec<String> = vec![];
    let mut inside = false;
    for line in state.lines() {
        if line.trim_start().starts_with("actor_states: [") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim() == "]," || line.trim() == "]" {
            break;
        }
        let depth = line.len() - line.trim_start().len();
        if depth <= 8 || blocks.is_empty() {
            blocks.push(line.trim().to_string());
        } else {
            let last = blocks.last_mut().unwrap();
            last.push('\n');
            last.push_str(line.trim());
        }
    }
    blocks
}
