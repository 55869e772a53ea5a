//! Fake cloud instance-metadata services on 127.0.0.1, for zone detection tests:
//! point `INFINISTREAM_METADATA_{AWS,GCP,AZURE}_URL` (or the runtime's
//! `MetadataEndpoints`) at [`FakeMetadata::url`].
//!
//! A fake answers each request with what its route returns: an HTTP answer, or
//! nothing at all (the connection stays open, as a black-holed link-local address
//! would). [`aws_imds`], [`gcp_metadata`] and [`azure_imds`] behave like the real
//! services on the paths and headers zone detection uses. Runs on the test's tokio
//! runtime; with a blocking wait in the test (a child's log line), use a
//! multi-threaded runtime so the fake keeps answering.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/latest/api/token`.
    pub path: String,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra header lines (`Name: value`), body.
    Answer(u16, Vec<String>, String),
    /// Keep the connection open and never answer.
    Hang,
}

/// 200 with `body`.
pub fn ok(body: &str) -> Reply {
    Reply::Answer(200, Vec::new(), body.to_owned())
}

/// `code` with an empty body.
pub fn status(code: u16) -> Reply {
    Reply::Answer(code, Vec::new(), String::new())
}

/// A running fake; stops when dropped.
#[derive(Debug)]
pub struct FakeMetadata {
    url: String,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeMetadata {
    /// Starts a fake whose `route` answers every request.
    pub async fn start(
        route: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> io::Result<FakeMetadata> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let route = Arc::new(route);
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let route = route.clone();
                tokio::spawn(async move {
                    let Some(request) = read_head(&mut stream).await else {
                        return;
                    };
                    match route(&request) {
                        Reply::Hang => {
                            // Hold the connection until the client gives up.
                            let mut buf = [0u8; 64];
                            let _ = stream.read(&mut buf).await;
                        }
                        Reply::Answer(code, headers, body) => {
                            let mut response = format!(
                                "HTTP/1.1 {code} Fake\r\nContent-Length: {}\r\nConnection: close\r\n",
                                body.len()
                            );
                            for header in headers {
                                response.push_str(&header);
                                response.push_str("\r\n");
                            }
                            response.push_str("\r\n");
                            response.push_str(&body);
                            let _ = stream.write_all(response.as_bytes()).await;
                        }
                    }
                });
            }
        });
        Ok(FakeMetadata {
            url,
            connections,
            task,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMetadata {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    Some(Request {
        method: first.next()?.to_owned(),
        path: first.next()?.to_owned(),
        headers: lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
    })
}

/// The token [`aws_imds`] hands out.
pub const AWS_TOKEN: &str = "AQAEAFake-Token==";

/// AWS IMDSv2: a token only for a PUT with a TTL header, the zone only with that
/// token, 404 elsewhere.
pub fn aws_imds(zone: &'static str) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |r| match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/latest/api/token")
            if r.header("X-aws-ec2-metadata-token-ttl-seconds").is_some() =>
        {
            ok(AWS_TOKEN)
        }
        ("PUT", "/latest/api/token") => status(400),
        ("GET", "/latest/meta-data/placement/availability-zone") => {
            if r.header("X-aws-ec2-metadata-token") == Some(AWS_TOKEN) {
                ok(zone)
            } else {
                status(401)
            }
        }
        _ => status(404),
    }
}

/// The GCP metadata server: it needs and sends `Metadata-Flavor: Google`; `answer`
/// is the zone path (`projects/N/zones/Z`).
pub fn gcp_metadata(answer: &'static str) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |r| match (r.path.as_str(), r.header("Metadata-Flavor")) {
        ("/computeMetadata/v1/instance/zone", Some("Google")) => Reply::Answer(
            200,
            vec!["Metadata-Flavor: Google".to_owned()],
            answer.to_owned(),
        ),
        ("/computeMetadata/v1/instance/zone", _) => status(403),
        _ => status(404),
    }
}

/// Azure IMDS: it needs `Metadata: true` and the API version; answers the VM's
/// location and zone (empty: the VM is in no zone) as text.
pub fn azure_imds(
    location: &'static str,
    zone: &'static str,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |r| {
        if r.header("Metadata") != Some("true") {
            return status(400);
        }
        match r.path.as_str() {
            "/metadata/instance/compute/location?api-version=2021-02-01&format=text" => {
                ok(location)
            }
            "/metadata/instance/compute/zone?api-version=2021-02-01&format=text" => ok(zone),
            _ => status(404),
        }
    }
}
