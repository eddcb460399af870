//! The global `fetch` in steps, against a canned HTTP/1.1 server on 127.0.0.1 (never any
//! other host).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use kici_executor::Status;

use crate::support::{Workspace, run};

/// One request as the server saw it.
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

fn respond(mut stream: &TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn handle(stream: TcpStream) {
    let Some(req) = read_request(&stream) else {
        return;
    };
    let json = |v: serde_json::Value| v.to_string().into_bytes();
    match req.path.as_str() {
        "/hello" | "/hello?from=redirect" => respond(
            &stream,
            "200 OK",
            &[
                ("content-type", "application/json"),
                ("x-server", "canned"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
            ],
            &json(serde_json::json!({
                "method": req.method,
                "path": req.path,
                "token": req.header("authorization"),
                "custom": req.header("x-custom"),
            })),
        ),
        "/echo" => {
            let hex: String = req.body.iter().map(|b| format!("{b:02x}")).collect();
            respond(
                &stream,
                "201 Created",
                &[("content-type", "application/json")],
                &json(serde_json::json!({
                    "method": req.method,
                    "contentType": req.header("content-type"),
                    "body": String::from_utf8_lossy(&req.body),
                    "hex": hex,
                })),
            )
        }
        "/text" => respond(
            &stream,
            "404 Not Found",
            &[("content-type", "text/plain; charset=utf-8")],
            "nothing here – ü".as_bytes(),
        ),
        "/redirect" => respond(
            &stream,
            "302 Found",
            &[("location", "/hello?from=redirect")],
            b"",
        ),
        "/see-other" => respond(&stream, "303 See Other", &[("location", "/echo")], b""),
        "/huge" => {
            // One byte over fetch's 64 MiB cap; the client stops reading, so writes may fail.
            let total = 64 * 1024 * 1024 + 1;
            let mut out = &stream;
            let head =
                format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {total}\r\n\r\n");
            if out.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = vec![b'x'; 1024 * 1024];
            let mut sent = 0;
            while sent < total {
                let n = chunk.len().min(total - sent);
                if out.write_all(&chunk[..n]).is_err() {
                    return;
                }
                sent += n;
            }
        }
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            respond(&stream, "200 OK", &[], b"late");
        }
        _ => respond(&stream, "500 Internal Server Error", &[], b"unknown path"),
    }
}

/// Starts the server; returns its port. The thread lives as long as the test process.
fn serve() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || handle(stream));
        }
    });
    port
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn fetch_talks_http_from_a_step() {
    let port = serve();
    let refused = closed_port();
    let source = r#"import { workflow, job, step, push } from '@kici-dev/sdk';
const base = 'http://127.0.0.1:PORT';
const eq = (actual: unknown, expected: unknown, what: string) => {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: got ${a}, want ${e}`);
};
const j = job('net', { runsOn: 'x', steps: [
  step('get', async ({ log }) => {
    const res = await fetch(`${base}/hello`, { headers: { Authorization: 'Bearer t0k', 'X-Custom': 'yes' } });
    eq(res.status, 200, 'status');
    eq(res.ok, true, 'ok');
    eq(res.statusText, 'OK', 'statusText');
    eq(res.headers.get('X-Server'), 'canned', 'header');
    eq(res.headers.has('x-missing'), false, 'has');
    eq(res.headers.get('set-cookie'), 'a=1, b=2', 'combined');
    const names: string[] = [];
    res.headers.forEach((_v, k) => names.push(k));
    eq(names.includes('content-type'), true, 'forEach');
    eq([...res.headers.entries()].filter(([k]) => k === 'set-cookie').length, 2, 'entries');
    eq(await res.json(), { method: 'GET', path: '/hello', token: 'Bearer t0k', custom: 'yes' }, 'json');
    eq(res.bodyUsed, true, 'bodyUsed');
    let again = '';
    try { await res.text(); } catch (e) { again = (e as Error).name; }
    eq(again, 'TypeError', 'second read');
    log.info('GET ok');
  }),
  step('post', async ({ log }) => {
    const res = await fetch(new Request(`${base}/echo`, { method: 'post', headers: new Headers([['content-type', 'application/json']]), body: JSON.stringify({ a: 'ü' }) }));
    eq(res.status, 201, 'status');
    eq(await res.json(), { method: 'POST', contentType: 'application/json', body: '{"a":"ü"}', hex: '7b2261223a22c3bc227d' }, 'echo');
    const form = await (await fetch(`${base}/echo`, { method: 'PUT', body: new URLSearchParams({ q: 'a b', r: '&' }) })).json();
    eq([form.method, form.contentType, form.body], ['PUT', 'application/x-www-form-urlencoded;charset=UTF-8', 'q=a+b&r=%26'], 'form');
    const bytes = await (await fetch(`${base}/echo`, { method: 'POST', body: new Uint8Array([0, 255, 128]) })).json();
    eq(bytes.hex, '00ff80', 'bytes');
    log.info('POST ok');
  }),
  step('text', async ({ log }) => {
    const res = await fetch(new URL('/text', base));
    eq([res.ok, res.status, res.statusText], [false, 404, 'Not Found'], 'status');
    eq(await res.clone().text(), 'nothing here – ü', 'text');
    eq(new Uint8Array(await res.arrayBuffer()).length, 19, 'arrayBuffer');
    log.info('TEXT ok');
  }),
  step('redirects', async ({ log }) => {
    const followed = await fetch(`${base}/redirect`, { headers: { authorization: 'same-origin' } });
    eq([followed.status, followed.redirected, followed.url], [200, true, `${base}/hello?from=redirect`], 'followed');
    eq((await followed.json()).token, 'same-origin', 'authorization kept on the same origin');
    const manual = await fetch(`${base}/redirect`, { redirect: 'manual' });
    eq([manual.status, manual.headers.get('location')], [302, '/hello?from=redirect'], 'manual');
    let error = '';
    try { await fetch(`${base}/redirect`, { redirect: 'error' }); } catch (e) { error = `${(e as Error).name}: ${(e as Error).message}`; }
    eq(error.startsWith('TypeError: fetch failed: unexpected redirect'), true, error);
    const seeOther = await (await fetch(`${base}/see-other`, { method: 'POST', body: 'x' })).json();
    eq([seeOther.method, seeOther.body], ['GET', ''], '303 turns into GET');
    log.info('REDIRECTS ok');
  }),
  step('errors', async ({ log }) => {
    let refused: any = null;
    try { await fetch('http://127.0.0.1:CLOSED_PORT/'); } catch (e) { refused = e; }
    eq(refused instanceof TypeError, true, 'TypeError');
    eq(refused.message, 'fetch failed: connect ECONNREFUSED 127.0.0.1:CLOSED_PORT', 'message');
    eq(refused.cause.code, 'ECONNREFUSED', 'cause');
    const started = Date.now();
    let aborted = '';
    try { await fetch(`${base}/slow`, { signal: AbortSignal.timeout(100) }); } catch (e) { aborted = (e as Error).name; }
    eq(aborted, 'TimeoutError', 'abort');
    if (Date.now() - started > 2000) throw new Error('abort did not end the request early');
    const controller = new AbortController();
    controller.abort();
    let early = '';
    try { await fetch(`${base}/hello`, { signal: controller.signal }); } catch (e) { early = (e as Error).name; }
    eq(early, 'AbortError', 'already aborted');
    let bad = '';
    try { await fetch(`${base}/hello`, { method: 'GET', body: 'x' }); } catch (e) { bad = (e as Error).message; }
    eq(bad, 'Request with GET/HEAD method cannot have body.', 'GET with body');
    let huge: any = null;
    try { await fetch(`${base}/huge`); } catch (e) { huge = e; }
    eq(String(huge?.message).startsWith('fetch failed: response body exceeds the 64 MiB limit of fetch()'), true, String(huge?.message));
    eq(huge.cause.code, 'ERR_FETCH_BODY_TOO_LARGE', 'cap code');
    log.info('ERRORS ok');
  }),
] });
export default workflow('net', { on: push(), jobs: [j] });
"#
    .replace("CLOSED_PORT", &refused.to_string())
    .replace("PORT", &port.to_string());
    let ws = Workspace::new(&source);
    let (result, rec) = run(ws.request("net", "net"));
    let lines = rec.lines();
    assert_eq!(result.status, Status::Success, "{result:#?}\n{lines:#?}");
    for (step, marker) in [
        ("get", "GET ok"),
        ("post", "POST ok"),
        ("text", "TEXT ok"),
        ("redirects", "REDIRECTS ok"),
        ("errors", "ERRORS ok"),
    ] {
        assert!(
            lines.contains(&format!("{step}|{marker}")),
            "{marker} missing: {lines:#?}"
        );
    }
}
