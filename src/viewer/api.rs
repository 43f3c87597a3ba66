//! The viewer's HTTP handlers: `/` (the status and the groups), `/blocks` (a table of blocks),
//! `/blocks/<block>` (one block, read from both buckets on demand), and their JSON under
//! `/api/v1/`: `groups`, `blocks` and `blocks/<block>`, paged and filtered by the same URL
//! parameters (`labels`, `ulid`, `state`, `group`, `from`, `to`, `page`, `per_page`).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::page::{self, Read, BLOCKS_PER_PAGE, GROUPS_PER_PAGE};
use super::{Bar, Query, Side};
use crate::http::HttpState;

/// The most of a meta.json the block page shows.
const META_SHOWN: usize = 1 << 20;
/// The most objects of a block the block page lists.
const OBJECTS_SHOWN: usize = 2_000;

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A query the URL spells wrong: 400, naming the parameter.
fn query(raw: &Option<String>, per_page: usize) -> Result<Query, Box<Response>> {
    Query::from_url(raw.as_deref(), per_page)
        .map_err(|e| Box::new((StatusCode::BAD_REQUEST, e.to_string()).into_response()))
}

pub async fn index(State(state): State<Arc<HttpState>>, RawQuery(raw): RawQuery) -> Response {
    let query = match query(&raw, GROUPS_PER_PAGE) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let snapshot = state.status.snapshot();
    let in_flight = state.status.in_flight();
    let groups = page::groups(&snapshot, &query, state.group_label.as_deref(), &in_flight);
    html(crate::status::html(&state.status.status(), &groups))
}

pub async fn blocks_page(State(state): State<Arc<HttpState>>, RawQuery(raw): RawQuery) -> Response {
    match query(&raw, BLOCKS_PER_PAGE) {
        Ok(query) => html(page::blocks(&state.status.snapshot(), &query)),
        Err(response) => *response,
    }
}

pub async fn block_page(State(state): State<Arc<HttpState>>, Path(dir): Path<String>) -> Response {
    let reads = read_both(&state, &dir).await;
    html(page::block(&dir, &state.status.snapshot(), &reads))
}

#[derive(Serialize)]
struct GroupJson<'a> {
    key: &'a str,
    title: String,
    labels: &'a std::collections::BTreeMap<String, String>,
    frontier: Option<i64>,
    counts: &'a std::collections::BTreeMap<&'static str, usize>,
    pending_blocks: usize,
    pending_bytes: u64,
    max_lag_seconds: Option<f64>,
    in_flight: usize,
    min_time: Option<i64>,
    max_time: Option<i64>,
    source_blocks: usize,
    target_blocks: usize,
}

#[derive(Serialize)]
struct Paged<T> {
    run_id: Option<u64>,
    total: usize,
    page: usize,
    per_page: usize,
    #[serde(flatten)]
    items: T,
}

pub async fn groups_json(State(state): State<Arc<HttpState>>, RawQuery(raw): RawQuery) -> Response {
    let query = match query(&raw, GROUPS_PER_PAGE) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let snapshot = state.status.snapshot();
    let in_flight = state.status.in_flight();
    let (shown, total) = query.page_of(query.groups(&snapshot));
    let groups: Vec<GroupJson> = shown
        .iter()
        .map(|s| (s, s.span()))
        .map(|(s, span)| GroupJson {
            key: &s.group.key,
            title: s.title(state.group_label.as_deref()),
            labels: &s.group.labels,
            frontier: s.group.frontier,
            counts: &s.group.counts,
            pending_blocks: s.group.pending_blocks,
            pending_bytes: s.group.pending_bytes,
            max_lag_seconds: s.group.max_lag_seconds,
            in_flight: in_flight.get(&s.group.key).map_or(0, Vec::len),
            min_time: span.map(|(min, _)| min),
            max_time: span.map(|(_, max)| max),
            source_blocks: s.source.len(),
            target_blocks: s.target.len(),
        })
        .collect();
    #[derive(Serialize)]
    struct Groups<'a> {
        groups: Vec<GroupJson<'a>>,
    }
    let (page, per_page) = (query.page, query.per_page);
    json(&Paged { run_id: snapshot.run_id, total, page, per_page, items: Groups { groups } })
}

#[derive(Serialize)]
struct BlockJson<'a> {
    group: &'a str,
    #[serde(flatten)]
    bar: &'a Bar,
}

pub async fn blocks_json(State(state): State<Arc<HttpState>>, RawQuery(raw): RawQuery) -> Response {
    let query = match query(&raw, BLOCKS_PER_PAGE) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let snapshot = state.status.snapshot();
    let bars = query.groups(&snapshot).flat_map(|s| {
        let group = s.group.key.as_str();
        s.source.into_iter().chain(s.target).map(move |bar| BlockJson { group, bar })
    });
    let (blocks, total) = query.page_of(bars);
    #[derive(Serialize)]
    struct Blocks<'a> {
        blocks: Vec<BlockJson<'a>>,
    }
    let (page, per_page) = (query.page, query.per_page);
    json(&Paged { run_id: snapshot.run_id, total, page, per_page, items: Blocks { blocks } })
}

pub async fn block_json(State(state): State<Arc<HttpState>>, Path(dir): Path<String>) -> Response {
    let snapshot = state.status.snapshot();
    let found: Vec<BlockJson> =
        snapshot.find(&dir).into_iter().map(|(g, bar)| BlockJson { group: &g.key, bar }).collect();
    #[derive(Serialize)]
    struct SideJson {
        side: Side,
        meta: Option<serde_json::Value>,
        meta_error: Option<String>,
        objects: Vec<(String, u64)>,
        objects_error: Option<String>,
    }
    let reads: Vec<SideJson> = read_both(&state, &dir)
        .await
        .into_iter()
        .map(|r| {
            let (meta, meta_error) = match r.meta {
                Ok(meta) => (meta.map(|m| serde_json::from_str(&m).unwrap_or(serde_json::Value::String(m))), None),
                Err(e) => (None, Some(e)),
            };
            let (objects, objects_error) = match r.objects {
                Ok(objects) => (objects, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            SideJson { side: r.side, meta, meta_error, objects, objects_error }
        })
        .collect();
    #[derive(Serialize)]
    struct Detail<'a> {
        block: &'a str,
        found: Vec<BlockJson<'a>>,
        buckets: Vec<SideJson>,
    }
    json(&Detail { block: &dir, found, buckets: reads })
}

/// The block folder `dir` in both buckets, as they hold it now.
async fn read_both(state: &HttpState, dir: &str) -> Vec<Read> {
    // A folder name is a ULID, under its tenant: nothing else is read from the buckets.
    let valid = super::is_block_folder(dir);
    let mut reads = Vec::new();
    for (side, store) in [(Side::Source, &state.source), (Side::Target, &state.target)] {
        let Some(store) = store else { continue };
        if !valid {
            let error = "not a block folder name (a ULID, under its tenant)".to_string();
            reads.push(Read { side, meta: Err(error.clone()), objects: Err(error) });
            continue;
        }
        reads.push(Read { side, meta: read_meta(&**store, dir).await, objects: list(&**store, dir).await });
    }
    reads
}

async fn read_meta(store: &dyn ObjectStore, dir: &str) -> Result<Option<String>, String> {
    let path = object_store::path::Path::from(format!("{dir}/meta.json"));
    match store.get(&path).await {
        Ok(result) => {
            let size = result.meta.size;
            if size > META_SHOWN as u64 {
                return Err(format!("{size} bytes, more than the {META_SHOWN} this page shows"));
            }
            let bytes = result.bytes().await.map_err(|e| e.to_string())?;
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

async fn list(store: &dyn ObjectStore, dir: &str) -> Result<Vec<(String, u64)>, String> {
    let prefix = object_store::path::Path::from(dir);
    let lead = format!("{dir}/");
    let objects: Vec<_> = futures::StreamExt::take(store.list(Some(&prefix)), OBJECTS_SHOWN)
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(objects
        .into_iter()
        .map(|o| (o.location.as_ref().strip_prefix(&lead).unwrap_or(o.location.as_ref()).to_string(), o.size))
        .collect())
}
