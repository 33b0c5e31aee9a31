//! The HTTP API: `fn app(lab) -> Router`.
//!
//! The router knows nothing about sockets; the accept loop in
//! [`crate::listener`] gives each request a [`RequestCtx`]
//! extension naming its connection. Called directly (`oneshot` in tests) the
//! handlers still work, they just have no connection to report.
//!
//! | endpoint | what it does |
//! |---|---|
//! | `/api/fast`, `/api/slow`, `/api/hang`, `/api/drip`, `/api/close`, `/api/sse` | the lesson endpoints, see [`crate::endpoints`] |
//! | `POST /api/sessions` | issues a session: `{"session": "s-…"}` |
//! | `GET /api/lessons` | the lesson catalogue |
//! | `GET /api/lessons/{id}` | one lesson's text: question, choices, explanation |
//! | `GET /api/tls` | the TLS ports: HTTP/2 (ALPN `h2`), HTTP/1.1 only, `max_concurrent_streams` |
//! | `POST /api/release` | releases the caller's hanging requests: `{"request": 12}`, `{"id": "t"}`, or all |
//! | `GET /api/connections` | the caller's policy and open connections with their recent requests |
//! | `GET /api/config`, `PUT /api/config` | the caller's keep-alive policy; PUT takes a partial JSON patch |
//! | `GET /api/room`, `PUT /api/room` | the instructor's: participants and their reports, defaults, lock the policy, move the room to a lesson, reset |
//! | `GET /api/room/join.svg` | the instructor's: the join link as a QR code |
//! | `GET /api/middlebox`, `PUT /api/middlebox` | the caller's middlebox settings (preset, idle timeout, expiry, time scale) and where it listens; see [`crate::middlebox::lab`] |
//! | `GET /api/events` | WebSocket: snapshot, then every event of the caller's world; control messages |
//! | anything else | the built frontend from `dist/` |
//!
//! The caller is its session (`session=`), or the anonymous scope without one;
//! with the instructor key (`key=` or `Authorization: Bearer`) and no session,
//! the whole server. Every error, including axum's own rejections, is a JSON
//! [`ApiError`]. CORS answers only the lab's own origins (second port,
//! `localhost`, `[::1]`), with credentials, so they can read every header.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, get, post};
use protocol::{
    PolicyPatch, ROOM_HINT, ReleaseRequest, ReleaseResponse, RoomState, ServerPolicy, SessionGrant,
};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::Lab;
use crate::assets::Ranged;
use crate::conn::RequestCtx;
use crate::endpoints;
use crate::error::ApiError;
use crate::events;
use crate::params::Params;
use crate::sessions::key::key_needed;
use crate::sessions::{Access, Owner};

/// Largest request body accepted anywhere (release and config bodies are tiny).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every API endpoint: its methods as the 404 hint names them (none: the
/// lessons' `GET` and `POST`) and its path. The router is built from this
/// list ([`app`]), so the 404 hint ([`ApiError::not_found`]) cannot leave
/// one out (found in review: it missed `/api/middlebox`, `/api/tls` and
/// `/api/room/join.svg`).
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/api/sessions"),
    ("", "/api/fast"),
    ("", "/api/slow"),
    ("", "/api/hang"),
    ("", "/api/drip"),
    ("", "/api/close"),
    ("", "/api/sse"),
    ("POST", "/api/release"),
    ("GET", "/api/connections"),
    ("GET", "/api/lessons"),
    ("GET", "/api/lessons/{id}"),
    ("GET|PUT", "/api/config"),
    ("GET|PUT", "/api/middlebox"),
    ("GET|PUT", "/api/room"),
    ("GET", "/api/room/join.svg"),
    ("GET", "/api/tls"),
    ("WebSocket", "/api/events"),
];

/// Whether `path` acts in its caller's scope (a session's, or without one
/// the anonymous scope's): its requests, hangs, connections, policy,
/// middlebox and events. From another machine these need a session or the
/// instructor key (`sessions::session_needed`).
pub fn acts_in_a_scope(path: &str) -> bool {
    matches!(
        path,
        "/api/fast"
            | "/api/slow"
            | "/api/hang"
            | "/api/drip"
            | "/api/close"
            | "/api/sse"
            | "/api/release"
            | "/api/connections"
            | "/api/config"
            | "/api/middlebox"
            | "/api/events"
    )
}

/// The handlers of `path`, one of [`ENDPOINTS`] (`None` for any other).
fn handlers(path: &str) -> Option<MethodRouter<Lab>> {
    Some(match path {
        "/api/fast" => get(endpoints::fast).post(endpoints::fast),
        "/api/slow" => get(endpoints::slow).post(endpoints::slow),
        "/api/hang" => get(endpoints::hang).post(endpoints::hang),
        "/api/drip" => get(endpoints::drip).post(endpoints::drip),
        "/api/close" => get(endpoints::close).post(endpoints::close),
        "/api/sse" => get(endpoints::sse).post(endpoints::sse),
        "/api/sessions" => post(create_session),
        "/api/lessons" => get(lessons),
        "/api/lessons/{id}" => get(lesson),
        "/api/tls" => get(tls_ports),
        "/api/release" => post(release),
        "/api/room" => get(get_room).put(put_room),
        "/api/room/join.svg" => get(join_qr),
        "/api/connections" => get(connections),
        "/api/config" => get(get_config).put(put_config),
        "/api/middlebox" => {
            get(crate::middlebox::lab::get_middlebox).put(crate::middlebox::lab::put_middlebox)
        }
        "/api/events" => get(events::upgrade),
        _ => return None,
    })
}

/// The lab's router.
pub fn app(lab: Lab) -> Router {
    let mut router = Router::new().route("/", get(index));
    for (_, path) in ENDPOINTS {
        if let Some(handlers) = handlers(path) {
            router = router.route(path, handlers);
        }
    }
    router
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::method_not_allowed(method.as_str(), uri.path())
        })
        .fallback(assets)
        .layer(cors(lab.clone()))
        .layer(FixedCorsLayer)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(lab)
}

/// The lab's own origins may call it and read its headers, with credentials:
/// the lessons compare pools across origins and credentials modes. No other
/// site may (the accept loop refuses their requests outright, too).
fn cors(lab: Lab) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, parts: &axum::http::request::Parts| {
                let Ok(origin) = origin.to_str() else {
                    return false;
                };
                // The lab's own address as the client reached it (a workshop
                // machine's LAN address) is its own origin too.
                let origins = lab.origins();
                match parts.extensions.get::<RequestCtx>() {
                    Some(ctx) => origins.allows_origin_at(origin, ctx.conn.local()),
                    None => origins.allows_origin(origin),
                }
            },
        ))
        .allow_credentials(true)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        // `Vary`, `Access-Control-Expose-Headers` and
        // `Access-Control-Max-Age` are the same for every answer: added
        // from static values by [`FixedCorsLayer`], outside this layer.
        // Here they were copied with the layer and built afresh for every
        // request (axum clones a route's layers per request: bench figure 1).
        .vary([] as [HeaderName; 0])
}

/// What a page on another of the lab's origins may read besides the
/// response's own headers: the lab's (`protocol::headers`), `Keep-Alive`
/// and `Connection` (`Access-Control-Expose-Headers`).
const EXPOSED: &str = "x-conn-id,x-request-seq,x-request-id,keep-alive,connection";

/// The request headers a CORS answer depends on (`Vary`): the fetch
/// standard's preflight headers and the origin, as tower-http lists them.
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";

/// How long a browser may keep a preflight's answer, in seconds
/// (`Access-Control-Max-Age`).
const PREFLIGHT_MAX_AGE: &str = "600";

/// The CORS headers that do not depend on the request's origin, added to
/// every answer of the router as [`cors`]'s layer would add them: `Vary`
/// appended to the answer's own, then `Access-Control-Max-Age` on a
/// preflight (every `OPTIONS`, which [`cors`] answers itself) and
/// `Access-Control-Expose-Headers` on everything else. From static values,
/// in a layer with nothing to copy per request.
#[derive(Debug, Clone, Copy)]
struct FixedCorsLayer;

impl<S> tower::Layer<S> for FixedCorsLayer {
    type Service = FixedCors<S>;

    fn layer(&self, inner: S) -> FixedCors<S> {
        FixedCors { inner }
    }
}

/// [`FixedCorsLayer`]'s service.
#[derive(Debug, Clone)]
struct FixedCors<S> {
    inner: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for FixedCors<S>
where
    S: tower::Service<axum::http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = FixedCorsFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        FixedCorsFuture {
            preflight: request.method() == Method::OPTIONS,
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer of [`FixedCors`]'s inner service, with the fixed headers.
    struct FixedCorsFuture<F> {
        #[pin]
        inner: F,
        preflight: bool,
    }
}

impl<F, E> std::future::Future for FixedCorsFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        let h = response.headers_mut();
        h.append(header::VARY, HeaderValue::from_static(VARY));
        if *this.preflight {
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
        } else {
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
        std::task::Poll::Ready(Ok(response))
    }
}

/// What [`cors`] adds to a simple request's answer for an allowed origin,
/// added to an answer the router never saw: a request the accept loop
/// refused before routing (a session this server did not issue, a cap, a
/// wrong key), so that the lab's page on another of its origins can read
/// the error and its hint instead of an opaque network error. `local` is
/// where the request reached the lab. Nothing for a foreign origin.
pub(crate) fn cors_for_refusal(
    lab: &Lab,
    origin: &HeaderValue,
    local: std::net::SocketAddr,
    response: &mut HeaderMap,
) {
    if !origin
        .to_str()
        .is_ok_and(|o| lab.origins().allows_origin_at(o, local))
    {
        return;
    }
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    response.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    response.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    response.insert(header::VARY, HeaderValue::from_static(VARY));
}

/// The page itself. Served no-cache so a rebuilt frontend is picked up.
async fn index(State(lab): State<Lab>, request: Request) -> Result<Response, ApiError> {
    match file(&lab, request).await {
        Some(page) => Ok(page),
        None => Err(ApiError::over_capacity(
            format!(
                "the frontend is not built: {} is missing",
                lab.config().dist_dir.join("index.html").display()
            ),
            "run `cargo xtask run`, which builds the frontend and then starts the server",
        )),
    }
}

/// The page built into the binary, unless a directory with a built page was
/// given (development: `--dist`, or `cargo xtask run`).
fn embedded_page(lab: &Lab) -> Option<&'static crate::assets::Embedded> {
    crate::assets::embedded().filter(|_| !crate::assets::dir_has_page(&lab.config().dist_dir))
}

/// Files from `dist/` (or built into the binary) for GET and HEAD; another
/// method on one of those files is a JSON 405 with `Allow`, as the API's
/// routes answer; anything else a JSON 404.
async fn assets(State(lab): State<Lab>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return file(&lab, request)
            .await
            .unwrap_or_else(|| ApiError::not_found(&path).into_response());
    }
    // Whether there is a file is asked as a HEAD for the same target would.
    let mut probe = Request::new(axum::body::Body::empty());
    *probe.method_mut() = Method::HEAD;
    *probe.uri_mut() = request.uri().clone();
    if file(&lab, probe).await.is_none() {
        return ApiError::not_found(&path).into_response();
    }
    let mut refused =
        ApiError::method_not_allowed(request.method().as_str(), &path).into_response();
    refused
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
    refused
}

/// The page's file that a GET or HEAD `request` asks for, if there is one,
/// built into the binary or read from `dist/` at this request (one answer for
/// both modes: [`page_file`]): gzip-compressed (`Content-Encoding: gzip`,
/// the `.gz` that `cargo xtask build` writes beside it) when the request
/// accepts gzip, as every browser does; served `no-cache`, so a rebuilt
/// frontend is picked up.
async fn file(lab: &Lab, request: Request) -> Option<Response> {
    let path = request.uri().path().to_owned();
    if path.ends_with(".gz") {
        // A `.gz` is another form of a page file, never a file of its own
        // (as in the single binary, which has no such path).
        return None;
    }
    let gzip = crate::assets::accepts_gzip(request.headers());
    let read;
    let file = match embedded_page(lab) {
        Some(page) => page.file(&path)?,
        None => {
            read = crate::assets::from_dir(&lab.config().dist_dir, &path).await?;
            &read
        }
    };
    let mut response = page_file(file, gzip, &request, &path);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Some(response)
}

/// What the conditions of RFC 9110 §13.2.2, in its order, leave to do with
/// a request for a page file (the page has no `Last-Modified`, so
/// `If-Unmodified-Since` and `If-Modified-Since` have nothing to compare
/// with and are ignored, as §13.1.3 and §13.1.4 say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `If-Match` names another representation: 412.
    PreconditionFailed,
    /// `If-None-Match` names this one (a reload asks again with the tag it
    /// has): 304.
    NotModified,
    /// Send it, whole or the one range asked (`If-Range` and `Range`).
    Send(Ranged),
}

/// A file of the page, as `request` asks for it (`gzip`: the compressed
/// representation, where there is one).
fn page_file(file: &crate::assets::File, gzip: bool, request: &Request, path: &str) -> Response {
    let sent = file.representation(gzip);
    let (bytes, etag) = (sent.bytes, sent.etag);
    let headers = request.headers();
    let answer = if !crate::assets::if_match(headers, etag) {
        Answer::PreconditionFailed
    } else if crate::assets::not_modified(headers, etag) {
        Answer::NotModified
    } else if *request.method() == Method::GET {
        Answer::Send(crate::assets::ranged(headers, bytes.len(), etag))
    } else {
        // Range is defined for GET only (§14.2): HEAD describes the whole.
        Answer::Send(Ranged::Whole)
    };
    let mut response = match answer {
        Answer::PreconditionFailed => {
            return ApiError::with_status(
                StatusCode::PRECONDITION_FAILED,
                format!("If-Match names none of the tags of {path} as sent (it is {etag})"),
                "leave If-Match out, or send the ETag of the file as last received",
            )
            .into_response();
        }
        Answer::Send(Ranged::Unsatisfiable) => {
            // The JSON error keeps its own type (`file` adds `Vary` and
            // `Cache-Control`: its length is the encoding's).
            return range_refused(
                headers.get(header::RANGE),
                path,
                HeaderValue::from_str(&format!("bytes */{}", bytes.len())).ok(),
            );
        }
        Answer::NotModified => {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            // The length a 200 would carry (RFC 9110 §8.6). hyper keeps it
            // for HTTP/2 and for HEAD; over HTTP/1.1 it leaves it out of a
            // 304 to GET, which §8.6 allows.
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            response
        }
        Answer::Send(Ranged::Whole) => bytes.clone().into_response(),
        Answer::Send(Ranged::Part { start, end }) => {
            if start <= end && end < bytes.len() {
                let mut response =
                    (StatusCode::PARTIAL_CONTENT, bytes.slice(start..=end)).into_response();
                if let Ok(range) =
                    HeaderValue::from_str(&format!("bytes {start}-{end}/{}", bytes.len()))
                {
                    response.headers_mut().insert(header::CONTENT_RANGE, range);
                }
                response
            } else {
                // `ranged` keeps within the bytes; were it not, the whole.
                bytes.clone().into_response()
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    if sent.gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// 416 for a `Range` that selects none of the bytes of the page file at
/// `path`: a JSON error, with `Content-Range: bytes */LEN` (`extent`).
fn range_refused(range: Option<&HeaderValue>, path: &str, extent: Option<HeaderValue>) -> Response {
    let mut refused = ApiError::with_status(
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!(
            "the range `{}` selects none of the bytes of {path} as sent",
            range.and_then(|v| v.to_str().ok()).unwrap_or("")
        ),
        "ask for bytes=0-, or leave Range out for the whole file",
    )
    .into_response();
    if let Some(extent) = extent {
        refused.headers_mut().insert(header::CONTENT_RANGE, extent);
    }
    refused
}

/// A body that could not be read (too large, cut short) as a JSON error.
fn body_error(rejection: &BytesRejection) -> ApiError {
    ApiError::with_status(
        rejection.status(),
        format!(
            "the request body could not be read: {}",
            rejection.body_text()
        ),
        format!("bodies are small JSON objects of at most {MAX_BODY_BYTES} bytes"),
    )
}

/// Parses a small JSON object body; `what` names it in errors.
fn json_object<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
    what: &str,
    hint: &str,
) -> Result<T, ApiError> {
    let text = body.trim_ascii();
    if text.is_empty() {
        return Ok(T::default());
    }
    if !text.starts_with(b"{") {
        return Err(ApiError::bad_request(
            format!("the {what} body must be a JSON object"),
            hint,
        ));
    }
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("the {what} body is not understood: {e}"), hint))
}

/// Who is asking: the instructor (a right key and no session) sees the whole
/// server; anyone else their session, or the anonymous scope. A wrong key or
/// a session this server did not issue is refused.
pub fn access(lab: &Lab, params: &Params, headers: &HeaderMap) -> Result<Access, ApiError> {
    let instructor = lab.config().instructor_key.check(params.key(), headers)?;
    let owner = Owner::of(params.session()?);
    if !lab.sessions().knows(&owner)
        && let Owner::Session(id) = &owner
    {
        return Err(crate::sessions::unknown_session(id));
    }
    Ok(match owner {
        Owner::Anonymous if instructor => Access::All,
        owner => Access::Of(owner),
    })
}

/// Whether a caller from `peer` may change `access`'s settings (keep-alive
/// policy, middlebox). A session changes its own and the instructor the
/// defaults. The anonymous scope's settings reach every connection that has
/// not named a session yet: every participant's page load and the browser's
/// spare sockets. So only the lab's own machine (`Conn::from_labs_machine`,
/// not through the lab's middlebox or an agent) or the instructor key may
/// change them. `conn` (the caller's connection) is `None` without the lab's
/// accept loop (in-process tests), which has no other caller.
pub fn may_configure(access: &Access, conn: Option<&crate::conn::Conn>) -> Result<(), ApiError> {
    let local = |conn: &crate::conn::Conn| {
        // Not a connection the lab made to itself for a client (its
        // middlebox's, an agent's): that client may be anywhere. As it was
        // at the accept: the middlebox's registration ends with its mapping,
        // while requests already read from it may still wait their turn.
        conn.via().is_none() && conn.from_labs_machine()
    };
    match access {
        Access::Of(Owner::Anonymous) if !conn.is_none_or(local) => Err(ApiError::forbidden(
            "without a session, this changes the anonymous scope, whose settings every \
             participant's connections follow until they name a session; only the lab's \
             own machine or the instructor may change them",
            "change your own: add ?session=S (your page's session; POST /api/sessions \
             issues one), or send the instructor key (key=… or Authorization: Bearer …)",
        )),
        _ => Ok(()),
    }
}

/// A change to a session's settings over HTTP (`PUT /api/config`,
/// `PUT /api/middlebox`) spends from the same rate as its sockets'
/// `set_config` and `set_middlebox` (found in review: over HTTP it spent
/// nothing, so a loop of PUTs went past the limit `docs/api.md` gives).
/// The instructor's, who holds the key, is not limited.
pub fn within_change_rate(lab: &Lab, access: &Access, what: &str) -> Result<(), ApiError> {
    let Access::Of(owner) = access else {
        return Ok(());
    };
    lab.sessions()
        .allow(owner, crate::sessions::rate::Kind::Changes)
        .map_err(|over| crate::events::too_many_changes(&format!("changes to {what}"), over))
}

/// The lesson catalogue (id, title, concept, summary), in teaching order.
async fn lessons(
    RawQuery(query): RawQuery,
) -> Result<Json<&'static [protocol::LessonEntry]>, ApiError> {
    Params::parse("/api/lessons", query.as_deref(), &[], "/api/lessons")?;
    Ok(Json(protocol::LESSONS))
}

/// One lesson's entry and text, which the page fetches when it opens it.
/// The id is read from the path as it came (lesson ids are plain ASCII), so a
/// strange one is a JSON 404 like any other unknown id.
async fn lesson(
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Result<Json<protocol::LessonPage>, ApiError> {
    Params::parse(
        "/api/lessons/{id}",
        query.as_deref(),
        &[],
        "/api/lessons/six-lanes",
    )?;
    let id = uri.path().strip_prefix("/api/lessons/").unwrap_or_default();
    protocol::LessonPage::of(id).map(Json).ok_or_else(|| {
        let shown: String = id.chars().take(64).collect();
        ApiError::with_status(
            axum::http::StatusCode::NOT_FOUND,
            format!("no lesson `{shown}`"),
            "GET /api/lessons lists every lesson's id",
        )
    })
}

/// `GET /api/tls`: the lab's TLS ports (HTTP/2, and HTTP/1.1 only).
async fn tls_ports(
    State(lab): State<Lab>,
    RawQuery(query): RawQuery,
) -> Result<Json<protocol::TlsListeners>, ApiError> {
    Params::parse("/api/tls", query.as_deref(), &[], "/api/tls")?;
    Ok(Json(lab.tls()))
}

async fn create_session(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
) -> Result<Json<SessionGrant>, ApiError> {
    let params = Params::parse(
        "/api/sessions",
        query.as_deref(),
        &["replaces"],
        "POST /api/sessions?replaces=s-… (the session this tab had before a reload)",
    )?;
    let replaces = params.session_in(
        "replaces",
        "send the session this tab's page had before it reloaded, or leave it out",
    )?;
    // Through the lab's middlebox, its client's address (the per-address
    // session cap), not the loopback address every mapping shares.
    let peer = ctx.map(|Extension(c)| c.conn.charged_ip());
    // A session this server does not know (any more) or that is not this
    // address's is not refused: nothing of it is carried, as after a
    // restart of the lab.
    let (session, carried) = lab.sessions().issue_replacing(peer, replaces.as_ref())?;
    if let Some((old, true)) = carried {
        lab.tracker()
            .emit(|_| protocol::ServerEvent::ParticipantLeft { session: old });
    }
    Ok(Json(SessionGrant { session }))
}

async fn release(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReleaseResponse>, ApiError> {
    let params = Params::parse(
        "/api/release",
        query.as_deref(),
        &["key"],
        "/api/release?session=s-…",
    )?;
    let access = access(&lab, &params, &headers)?;
    let body = body.map_err(|r| body_error(&r))?;
    let filter = parse_release(&body)?;
    Ok(Json(ReleaseResponse {
        released: lab.hangs().release(
            &filter,
            &access,
            ctx.map(|Extension(c)| c.conn.charged_ip()),
        ),
    }))
}

/// Parses a release body: empty means "all".
pub fn parse_release(body: &[u8]) -> Result<ReleaseRequest, ApiError> {
    let hint = r#"send {"request": 12} or {"id": "demo-1"}, or an empty body to release every hanging request"#;
    let filter: ReleaseRequest = json_object(body, "release", hint)?;
    if filter.request.is_some() && filter.id.is_some() {
        return Err(ApiError::bad_request(
            "give either `request` or `id`, not both",
            hint,
        ));
    }
    Ok(filter)
}

async fn connections(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<protocol::ServerEvent>, ApiError> {
    let params = Params::parse(
        "/api/connections",
        query.as_deref(),
        &["key"],
        "/api/connections?session=s-…",
    )?;
    let access = access(&lab, &params, &headers)?;
    let host = ctx.map(|Extension(c)| c.conn.charged_ip());
    let mut filter = events::Filter::new(events::Scope::new(access.clone(), host));
    Ok(Json(filter.snapshot(lab.snapshot_for(&access, host))))
}

async fn get_config(
    State(lab): State<Lab>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<ServerPolicy>, ApiError> {
    let params = Params::parse(
        "/api/config",
        query.as_deref(),
        &["key"],
        "/api/config?session=s-…",
    )?;
    Ok(Json(match access(&lab, &params, &headers)? {
        Access::All => lab.sessions().defaults(),
        Access::Of(owner) => lab.policy(&owner),
    }))
}

async fn put_config(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ServerPolicy>, ApiError> {
    let params = Params::parse(
        "/api/config",
        query.as_deref(),
        &["key"],
        "/api/config?session=s-…",
    )?;
    let access = access(&lab, &params, &headers)?;
    may_configure(&access, ctx.as_ref().map(|Extension(c)| &*c.conn))?;
    let body = body.map_err(|r| body_error(&r))?;
    let hint = r#"send some of {"keep_alive": true, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": {"idle_s": 60, "interval_s": 10}}"#;
    let patch: PolicyPatch = json_object(&body, "config", hint)?;
    within_change_rate(&lab, &access, "the config")?;
    Ok(Json(match access {
        Access::All => lab.set_defaults(&patch)?,
        Access::Of(owner) => lab.set_policy(&owner, &patch)?,
    }))
}

/// The instructor's access, or a refusal.
fn instructor(lab: &Lab, params: &Params, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    if lab.config().instructor_key.check(params.key(), headers)? {
        Ok(())
    } else {
        Err(key_needed(what))
    }
}

fn room(lab: &Lab) -> RoomState {
    RoomState {
        policy_locked: lab.sessions().locked(),
        defaults: lab.sessions().defaults(),
        sessions: lab.sessions().count(),
        connections: lab.tracker().open_count(),
        lesson: lab.sessions().room_lesson(),
        participants: lab.sessions().participants(),
    }
}

async fn get_room(
    State(lab): State<Lab>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<RoomState>, ApiError> {
    let params = Params::parse("/api/room", query.as_deref(), &["key"], "/api/room?key=…")?;
    instructor(&lab, &params, &headers, "the room's state")?;
    Ok(Json(room(&lab)))
}

/// The join link the instructor's code encodes: `http://` and the
/// authority the instructor reached the lab at (`web::addressed_to`, the one
/// the accept loop checked), else the address the connection came in on
/// (`local`: a request without `Host`), else `127.0.0.1`.
fn join_url(uri: &Uri, headers: &HeaderMap, local: Option<std::net::SocketAddr>) -> String {
    match crate::web::addressed_to(uri, headers).and_then(|a| std::str::from_utf8(a).ok()) {
        Some(authority) => format!("http://{authority}/"),
        None => format!(
            "http://{}/",
            local.map_or("127.0.0.1".to_owned(), |l| l.to_string())
        ),
    }
}

/// The join link (`http://HOST/` as the instructor reached the lab) as a QR
/// code, for the room to scan. Instructor only: it is shown on the
/// instructor's page.
async fn join_qr(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(
        "/api/room/join.svg",
        query.as_deref(),
        &["key"],
        "/api/room/join.svg?key=…",
    )?;
    instructor(&lab, &params, &headers, "the join code")?;
    let url = join_url(&uri, &headers, ctx.map(|Extension(c)| c.conn.local()));
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|e| {
        ApiError::bad_request(
            format!("no QR code for {url}: {e}"),
            "use a shorter host name",
        )
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

async fn put_room(
    State(lab): State<Lab>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RoomState>, ApiError> {
    let params = Params::parse("/api/room", query.as_deref(), &["key"], "/api/room?key=…")?;
    instructor(&lab, &params, &headers, "changing the room")?;
    let body = body.map_err(|r| body_error(&r))?;
    let patch: RoomChange = json_object(&body, "room", ROOM_HINT)?;
    if let Some(lesson) = &patch.lesson {
        lab.sessions().set_room_lesson(lesson.as_deref())?;
    }
    if let Some(locked) = patch.policy_locked {
        lab.set_locked(locked);
    }
    if patch.reset == Some(true) {
        lab.sessions().reset_reports();
        for participant in lab.sessions().participants() {
            lab.tracker()
                .emit(|_| protocol::ServerEvent::ParticipantChanged { participant });
        }
    }
    // A cleared lesson moves nobody (the pages already on it stay there,
    // and pages that load later are no longer sent to it: their snapshot's
    // `room_lesson` is empty), and is told all the same: the instructor's
    // views show the room's lesson.
    if let Some(lesson) = patch.lesson {
        lab.tracker()
            .emit(|_| protocol::ServerEvent::RoomLesson { lesson });
    }
    Ok(Json(room(&lab)))
}

/// The body of `PUT /api/room` as the server reads it: protocol's
/// [`protocol::RoomPatch`] (what the page writes) with `"lesson": null` told apart
/// from no `lesson`. Found in review: read as a `RoomPatch`, `null` was
/// taken as absent, answered 200 and changed nothing, so the room's lesson
/// could never be cleared. As in [`PolicyPatch`], `null` clears what can be
/// cleared and is refused for what cannot (`policy_locked`, `reset`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomChange {
    /// See [`protocol::RoomPatch::policy_locked`].
    #[serde(default, deserialize_with = "not_null")]
    policy_locked: Option<bool>,
    /// See [`protocol::RoomPatch::lesson`]; `Some(None)` clears the room's lesson.
    #[serde(default, deserialize_with = "present")]
    lesson: Option<Option<String>>,
    /// See [`protocol::RoomPatch::reset`].
    #[serde(default, deserialize_with = "not_null")]
    reset: Option<bool>,
}

/// A field that cannot be cleared: `null` is an error, not "absent".
fn not_null<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A field that is present, even as `null`, becomes `Some(value)`.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::RoomChange;

    /// The fixed CORS headers' values name what they stand for: the lab's
    /// headers, `Keep-Alive` and `Connection` exposed; tower-http's
    /// preflight headers in `Vary`.
    #[test]
    fn the_fixed_cors_values_list_their_headers() {
        use protocol::headers;
        let exposed = [
            headers::CONN_ID,
            headers::REQUEST_SEQ,
            headers::REQUEST_ID,
            "keep-alive",
            "connection",
        ];
        assert_eq!(super::EXPOSED, exposed.join(","));
        let vary: Vec<String> = tower_http::cors::preflight_request_headers()
            .map(|name| name.as_str().to_owned())
            .collect();
        assert_eq!(super::VARY, vary.join(", "));
    }

    /// Every endpoint the 404 hint lists is routed.
    #[test]
    fn every_listed_endpoint_has_its_handlers() {
        for (_, path) in super::ENDPOINTS {
            assert!(super::handlers(path).is_some(), "{path}");
        }
    }

    /// Every endpoint either acts in its caller's scope (and so needs a
    /// session from another machine) or is one of those that do not: what
    /// a page reads before it has a session, and the room's, which need the
    /// key. A new endpoint must be put on one side (the session rule would
    /// otherwise leave it open to other machines in the anonymous scope).
    #[test]
    fn every_endpoint_is_said_to_act_in_a_scope_or_not() {
        let outside = [
            "/api/sessions",
            "/api/lessons",
            "/api/lessons/{id}",
            "/api/tls",
            "/api/room",
            "/api/room/join.svg",
        ];
        for (_, path) in super::ENDPOINTS {
            assert_ne!(
                super::acts_in_a_scope(path),
                outside.contains(path),
                "{path}: put it in `acts_in_a_scope` or in this list"
            );
        }
    }

    /// The page writes protocol's `RoomPatch`; the server reads `RoomChange`:
    /// whatever the page writes must read the same.
    #[test]
    fn a_room_patch_the_page_writes_reads_the_same() {
        let read = |patch: &protocol::RoomPatch| -> RoomChange {
            serde_json::from_str(&serde_json::to_string(patch).expect("JSON")).expect("read")
        };
        let all = read(&protocol::RoomPatch {
            policy_locked: Some(true),
            lesson: Some("pools".into()),
            reset: Some(true),
        });
        assert_eq!(all.policy_locked, Some(true));
        assert_eq!(all.lesson, Some(Some("pools".into())));
        assert_eq!(all.reset, Some(true));
        let none = read(&protocol::RoomPatch::default());
        assert_eq!(
            (none.policy_locked, none.lesson, none.reset),
            (None, None, None)
        );
    }
}
