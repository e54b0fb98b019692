//! The API around talks and events that is not about signing in: event comments,
//! attendance, stars, tracks, hosts, images, speakers, a user's talks, events and
//! comments, languages and talk types, and reporting comments. Each link the emulator
//! hands out (`*_uri`) is served here or in the parent module.

use super::{
    ApiResult, Ctx, Identity, Outcome, all_tracks, comment_item, envelope, err, event_date,
    event_images, event_item, gravatar_hash, is_admin, paged, paging, talk_item, user_item,
    viewer_username, visible_comment, visible_event,
};
use crate::joindin::model::{Db, EventCommentRow, JoindinEvent, JoindinTalk};
use crate::joindin::php::{self, MapBuilder, PVal};

/// Languages a talk can be given in (`languages` table), in id order.
const LANGUAGES: [(&str, &str); 8] = [
    ("English - UK", "en_GB"),
    ("English - US", "en_US"),
    ("German", "de"),
    ("French", "fr"),
    ("Dutch", "nl"),
    ("Spanish", "es"),
    ("Italian", "it"),
    ("Portuguese", "pt"),
];

/// Talk types (`categories` table), in id order.
const TALK_TYPES: [&str; 6] = [
    "Talk",
    "Social event",
    "Keynote",
    "Workshop",
    "Event Related",
    "Lightning talk",
];

/// A single item in the list envelope, as every `GET …/{id}` answers.
fn single(ctx: &Ctx, plural: &str, item: PVal) -> ApiResult {
    let (start, rpp) = paging(ctx);
    Ok(Outcome::Content(envelope(
        ctx,
        plural,
        vec![item],
        1,
        start,
        rpp,
        None,
    )))
}

/// `{"<flag>": bool}`: no list, so no `count` (only `meta.user_uri` when signed in).
fn flag(name: &str, value: bool) -> ApiResult {
    Ok(Outcome::Content(
        MapBuilder::new().put(name, PVal::Bool(value)).build(),
    ))
}

/// A write's empty answer: a status and a `Location`.
fn void(status: u16, location: String) -> ApiResult {
    Ok(Outcome::Void {
        status,
        headers: vec![("location", location)],
    })
}

fn signed_in(ctx: &Ctx, message: &str) -> Result<u64, super::ApiError> {
    match ctx.identity.user_id() {
        Some(id) if ctx.identity.is_set() => Ok(id),
        _ => Err(err(401, message)),
    }
}

fn source(ctx: &Ctx, db: &Db) -> String {
    match &ctx.identity {
        Identity::User { consumer_key, .. } => {
            db.client(consumer_key).map(|c| c.application.clone())
        }
        _ => None,
    }
    .unwrap_or_else(|| "joind.in".into())
}

// --- events -------------------------------------------------------------------------

/// `GET /events/{id}/{sub}`. Lists under an event Joind.in does not show are empty.
pub(super) fn event_sub(ctx: &Ctx, db: &Db, id: u64, sub: &str) -> ApiResult {
    let event = visible_event(ctx, db, id);
    match sub {
        "comments" => {
            let mut comments: Vec<&EventCommentRow> = db
                .event_comments
                .iter()
                .filter(|c| event.is_some() && c.event_id == id)
                .collect();
            // Newest first, unlike talk comments.
            comments.sort_by_key(|c| std::cmp::Reverse((c.created, c.id)));
            paged(ctx, "comments", &comments, |c| {
                event_comment_item(ctx, db, c)
            })
        }
        "talk_comments" => {
            let mut comments: Vec<_> = db
                .comments
                .iter()
                .filter(|c| {
                    event.is_some()
                        && db.talk(c.talk_id).is_some_and(|t| t.event_id == id)
                        && visible_comment(ctx, db, c)
                })
                .cloned()
                .collect();
            comments.sort_by_key(|c| (c.created, c.id));
            paged(ctx, "comments", &comments, |c| comment_item(ctx, db, c))
        }
        "attendees" => {
            let ids: Vec<u64> = event
                .map(|e| {
                    e.attendees
                        .iter()
                        .filter_map(|u| db.user_id_by_name(u))
                        .collect()
                })
                .unwrap_or_default();
            paged(ctx, "users", &ids, |uid| user_item(ctx, db, *uid))
        }
        "attending" => {
            let viewer = viewer_username(ctx, db);
            flag(
                "is_attending",
                event
                    .zip(viewer)
                    .is_some_and(|(e, v)| e.attendees.contains(&v)),
            )
        }
        "tracks" => {
            let tracks: Vec<(u64, u64, String)> = all_tracks(db)
                .into_iter()
                .enumerate()
                .filter(|(_, (event_id, _))| event.is_some() && *event_id == id)
                .map(|(i, (event_id, name))| (i as u64 + 1, event_id, name))
                .collect();
            paged(ctx, "tracks", &tracks, |(track_id, event_id, name)| {
                track_item(ctx, db, *track_id, *event_id, name)
            })
        }
        "hosts" => {
            let hosts: Vec<(String, u64)> = event
                .map(|e| {
                    e.hosts
                        .iter()
                        .filter_map(|h| db.users.iter().find(|u| &u.user.username == h))
                        .map(|u| (u.user.full_name.clone(), u.id))
                        .collect()
                })
                .unwrap_or_default();
            if hosts.is_empty() {
                // The mapper returns false for an event without hosts: an empty body.
                return Ok(Outcome::Void {
                    status: 200,
                    headers: Vec::new(),
                });
            }
            paged(ctx, "hosts", &hosts, |(name, uid)| {
                MapBuilder::new()
                    .put("host_name", PVal::str(name.clone()))
                    .put("host_uri", PVal::str(format!("{}/users/{uid}", ctx.api())))
                    .build()
            })
        }
        "images" => {
            let images = match event.map(|e| event_images(ctx, e)) {
                Some(PVal::Map(images)) => images.into_iter().map(|(_, image)| image).collect(),
                _ => Vec::new(),
            };
            paged(ctx, "images", &images, Clone::clone)
        }
        _ => Err(err(404, "Unknown Subrequest")),
    }
}

/// `POST /events/{id}/{sub}`: a comment, attendance, or an administrator's approval.
pub(super) fn event_post(ctx: &Ctx, db: &mut Db, id: u64, sub: Option<&str>) -> ApiResult {
    match sub {
        Some("comments") => event_comment_post(ctx, db, id),
        Some("attending") => {
            signed_in(ctx, "You must be logged in to create data")?;
            let viewer = viewer_username(ctx, db).unwrap_or_default();
            visible_event(ctx, db, id).ok_or_else(|| err(404, "Event not found"))?;
            let event = event_mut(db, id);
            if !event.attendees.contains(&viewer) {
                event.attendees.push(viewer);
            }
            void(201, format!("{}/events/{id}", ctx.api()))
        }
        Some("approval") => {
            signed_in(ctx, "You must be logged in to create data")?;
            if !is_admin(ctx, db) {
                return Err(err(403, "You don't have permission to do that"));
            }
            if !db.event(id).is_some_and(|e| e.pending) {
                return Err(err(404, "Event not found"));
            }
            event_mut(db, id).pending = false;
            void(204, format!("{}/events/{id}", ctx.api()))
        }
        _ => Err(err(404, "Operation not supported, sorry")),
    }
}

/// `DELETE /events/{id}/attending`.
pub(super) fn event_delete(ctx: &Ctx, db: &mut Db, id: u64, sub: Option<&str>) -> ApiResult {
    if sub != Some("attending") {
        return Err(err(404, "Operation not supported, sorry"));
    }
    signed_in(ctx, "You must be logged in to remove data")?;
    let viewer = viewer_username(ctx, db).unwrap_or_default();
    visible_event(ctx, db, id).ok_or_else(|| err(404, "Event not found"))?;
    event_mut(db, id).attendees.retain(|a| *a != viewer);
    void(200, format!("{}/events/{id}", ctx.api()))
}

fn event_mut(db: &mut Db, id: u64) -> &mut JoindinEvent {
    db.events
        .iter_mut()
        .find(|(i, _)| *i == id)
        .map(|(_, e)| e)
        .expect("the event was looked up first")
}

/// `POST /events/{id}/comments`: unlike talk comments, anonymity is a 400 and the rating
/// must be 1 to 5.
fn event_comment_post(ctx: &Ctx, db: &mut Db, id: u64) -> ApiResult {
    let Some(user_id) = ctx.identity.user_id().filter(|_| ctx.identity.is_set()) else {
        return Err(err(400, "You must log in to comment"));
    };
    visible_event(ctx, db, id).ok_or_else(|| err(404, "Event not found"))?;
    if php::is_empty(ctx.param("comment")) {
        return Err(err(400, "The field \"comment\" is required"));
    }
    let rating = php::as_php_int(ctx.param("rating"));
    if !(1..=5).contains(&rating) {
        return Err(err(
            400,
            "The field \"rating\" must be a number from 1 to 5",
        ));
    }
    let comment = php::as_php_string(ctx.param("comment")).unwrap_or_default();
    let source = source(ctx, db);
    let comment_id = db.add_event_comment(EventCommentRow {
        id: 0,
        event_id: id,
        user_id,
        comment,
        rating,
        source,
        created: ctx.now,
        reported: false,
    });
    void(201, format!("{}/event_comments/{comment_id}", ctx.api()))
}

fn event_comment_item(ctx: &Ctx, db: &Db, c: &EventCommentRow) -> PVal {
    let api = ctx.api();
    let uri = format!("{api}/event_comments/{}", c.id);
    let user = db.user(c.user_id);
    let created = db.event(c.event_id).map_or_else(
        || PVal::str(crate::time::format_with_offset(c.created, 0)),
        |e| event_date(e, c.created),
    );
    let mut m = MapBuilder::new()
        .put("rating", PVal::col(c.rating))
        .put("comment", PVal::str(c.comment.clone()))
        .put(
            "user_display_name",
            PVal::str(user.map_or(String::new(), |u| u.full_name.clone())),
        )
        .put("username", PVal::opt_str(user.map(|u| u.username.as_str())))
        .put("created_date", created);
    if c.user_id != 0 {
        m.push("user_uri", PVal::str(format!("{api}/users/{}", c.user_id)));
    }
    m = m
        .put("comment_uri", PVal::str(uri.clone()))
        .put(
            "verbose_comment_uri",
            PVal::str(format!("{uri}?verbose=yes")),
        )
        .put(
            "event_uri",
            PVal::str(format!("{api}/events/{}", c.event_id)),
        )
        .put(
            "event_comments_uri",
            PVal::str(format!("{api}/events/{}/comments", c.event_id)),
        )
        .put("reported_uri", PVal::str(format!("{uri}/reported")));
    if ctx.verbose {
        m.push("source", PVal::str(c.source.clone()));
        m.push(
            "gravatar_hash",
            PVal::str(user.map_or_else(String::new, |u| gravatar_hash(&u.email))),
        );
    }
    m.build()
}

/// `GET /event_comments/{id}`.
pub(super) fn event_comment_single(ctx: &Ctx, db: &Db, id: Option<u64>) -> ApiResult {
    let comment = id
        .and_then(|id| db.event_comments.iter().find(|c| c.id == id))
        .filter(|c| visible_event(ctx, db, c.event_id).is_some())
        .ok_or_else(|| err(404, "Comment not found"))?;
    single(ctx, "comments", event_comment_item(ctx, db, comment))
}

/// `POST /event_comments/{id}/reported`: 202, `Location` the event's comments.
pub(super) fn report_event_comment(
    ctx: &Ctx,
    db: &mut Db,
    id: u64,
    sub: Option<&str>,
) -> ApiResult {
    if sub != Some("reported") {
        return Err(err(404, "Operation not supported, sorry"));
    }
    signed_in(ctx, "You must log in to report a comment")?;
    let Some(row) = db.event_comments.iter_mut().find(|c| c.id == id) else {
        return Err(err(404, "Comment not found"));
    };
    row.reported = true;
    let event_id = row.event_id;
    void(202, format!("{}/events/{event_id}/comments", ctx.api()))
}

/// `POST /talk_comments/{id}/reported`: 202, `Location` the talk's comments.
pub(super) fn report_talk_comment(ctx: &Ctx, db: &mut Db, id: u64, sub: Option<&str>) -> ApiResult {
    if sub != Some("reported") {
        return Err(err(404, "Operation not supported, sorry"));
    }
    signed_in(ctx, "You must log in to report a comment")?;
    let visible = db
        .comments
        .iter()
        .any(|c| c.id == id && visible_comment(ctx, db, c));
    let row = db
        .comments
        .iter_mut()
        .find(|c| c.id == id)
        .filter(|_| visible)
        .ok_or_else(|| err(404, "Comment not found"))?;
    row.reported = true;
    let talk_id = row.talk_id;
    void(202, format!("{}/talks/{talk_id}/comments", ctx.api()))
}

// --- talks --------------------------------------------------------------------------

fn visible_talk<'a>(ctx: &Ctx, db: &'a Db, id: u64) -> Option<&'a JoindinTalk> {
    db.talk(id)
        .filter(|t| visible_event(ctx, db, t.event_id).is_some())
}

fn talk_mut(db: &mut Db, id: u64) -> &mut JoindinTalk {
    db.talks
        .iter_mut()
        .find(|(i, _)| *i == id)
        .map(|(_, t)| t)
        .expect("the talk was looked up first")
}

/// `GET /talks/{id}/{starred|tracks|speakers}`.
pub(super) fn talk_sub(ctx: &Ctx, db: &Db, id: u64, sub: Option<&str>) -> ApiResult {
    let talk = visible_talk(ctx, db, id);
    match sub {
        Some("starred") => {
            let viewer = viewer_username(ctx, db);
            flag(
                "has_starred",
                talk.zip(viewer)
                    .is_some_and(|(t, v)| t.starred_by.contains(&v)),
            )
        }
        Some("tracks") => {
            let tracks: Vec<(u64, u64, String)> = all_tracks(db)
                .into_iter()
                .enumerate()
                .filter(|(_, (event_id, name))| {
                    talk.is_some_and(|t| t.event_id == *event_id && t.tracks.contains(name))
                })
                .map(|(i, (event_id, name))| (i as u64 + 1, event_id, name))
                .collect();
            paged(ctx, "tracks", &tracks, |(track_id, event_id, name)| {
                track_item(ctx, db, *track_id, *event_id, name)
            })
        }
        Some("speakers") => {
            let speakers = talk.map(|t| t.speakers.clone()).unwrap_or_default();
            paged(ctx, "speakers", &speakers, |(name, username)| {
                let mut s = MapBuilder::new().put("speaker_name", PVal::str(name.clone()));
                if let Some(uid) = username.as_ref().and_then(|u| db.user_id_by_name(u)) {
                    s.push(
                        "speaker_uri",
                        PVal::str(format!("{}/users/{uid}", ctx.api())),
                    );
                }
                s.build()
            })
        }
        _ => Err(err(404, "Unknown Subrequest")),
    }
}

/// `POST /talks/{id}/starred`. Starring twice breaks the table's unique key: Joind.in
/// answers 500 `Database error`, and so does the emulator.
pub(super) fn star(ctx: &Ctx, db: &mut Db, id: u64) -> ApiResult {
    signed_in(ctx, "You must be logged in to create data")?;
    let viewer = viewer_username(ctx, db).unwrap_or_default();
    let talk = visible_talk(ctx, db, id).ok_or_else(|| err(404, "Talk not found"))?;
    if talk.starred_by.contains(&viewer) {
        return Err(err(500, "Database error"));
    }
    talk_mut(db, id).starred_by.push(viewer);
    void(201, format!("{}/talks/{id}/starred", ctx.api()))
}

/// `DELETE /talks/{id}/starred` (205) and `DELETE /talks/{id}/tracks/{track}` (a host's
/// or an administrator's; 204).
pub(super) fn talk_delete(ctx: &Ctx, db: &mut Db, id: u64, rest: &[&str]) -> ApiResult {
    signed_in(ctx, "You must be logged in to remove data")?;
    let talk = visible_talk(ctx, db, id).ok_or_else(|| err(404, "Talk not found"))?;
    match rest {
        ["starred"] | ["starred", ""] => {
            let viewer = viewer_username(ctx, db).unwrap_or_default();
            talk_mut(db, id).starred_by.retain(|s| *s != viewer);
            void(205, format!("{}/talks/{id}/starred", ctx.api()))
        }
        ["tracks", track] => {
            let event_id = talk.event_id;
            let host = viewer_username(ctx, db)
                .is_some_and(|v| db.event(event_id).is_some_and(|e| e.hosts.contains(&v)));
            if !(host || is_admin(ctx, db)) {
                return Err(err(403, "You do not have permission to remove this track"));
            }
            let name = track
                .parse::<usize>()
                .ok()
                .and_then(|n| all_tracks(db).into_iter().nth(n.wrapping_sub(1)))
                .filter(|(e, name)| *e == event_id && talk.tracks.contains(name))
                .map(|(_, name)| name)
                .ok_or_else(|| err(404, "Track not found"))?;
            talk_mut(db, id).tracks.retain(|t| *t != name);
            void(204, format!("{}/talks/{id}/tracks", ctx.api()))
        }
        _ => Err(err(404, "Operation not supported, sorry")),
    }
}

// --- tracks, users, languages, talk types -------------------------------------------

fn track_item(ctx: &Ctx, db: &Db, track_id: u64, event_id: u64, name: &str) -> PVal {
    let api = ctx.api();
    let uri = format!("{api}/tracks/{track_id}");
    let talks_count = db
        .talks
        .iter()
        .filter(|(_, t)| t.event_id == event_id && t.tracks.iter().any(|n| n == name))
        .count();
    MapBuilder::new()
        .put("track_name", PVal::str(name))
        .put("track_description", PVal::str(""))
        .put("talks_count", PVal::col(talks_count))
        .put("uri", PVal::str(uri.clone()))
        .put("verbose_uri", PVal::str(format!("{uri}?verbose=yes")))
        .put("event_uri", PVal::str(format!("{api}/events/{event_id}")))
        .build()
}

/// `GET /tracks/{id}`.
pub(super) fn track_single(ctx: &Ctx, db: &Db, id: Option<u64>) -> ApiResult {
    let (event_id, name) = id
        .and_then(|id| {
            all_tracks(db)
                .into_iter()
                .nth((id as usize).wrapping_sub(1))
        })
        .filter(|(event_id, _)| visible_event(ctx, db, *event_id).is_some())
        .ok_or_else(|| err(404, "Track not found"))?;
    let item = track_item(ctx, db, id.unwrap_or(0), event_id, &name);
    single(ctx, "tracks", item)
}

/// `GET /users/{id}/{talks|attended|hosted|talk_comments}`; an unknown user has none.
pub(super) fn user_sub(ctx: &Ctx, db: &Db, id: u64, sub: &str) -> ApiResult {
    let username = db.user(id).map(|u| u.username.clone());
    let events = |pick: fn(&JoindinEvent) -> &Vec<String>| -> Vec<(u64, JoindinEvent)> {
        let mut events: Vec<(u64, JoindinEvent)> = db
            .events
            .iter()
            .filter(|(eid, e)| {
                username.as_ref().is_some_and(|u| pick(e).contains(u))
                    && visible_event(ctx, db, *eid).is_some()
            })
            .cloned()
            .collect();
        events.sort_by_key(|(_, e)| std::cmp::Reverse(e.start));
        events
    };
    match sub {
        "talks" => {
            let mut talks: Vec<(u64, JoindinTalk)> = db
                .talks
                .iter()
                .filter(|(tid, t)| {
                    t.speakers
                        .iter()
                        .any(|(_, s)| s.is_some() && s.as_ref() == username.as_ref())
                        && visible_talk(ctx, db, *tid).is_some()
                })
                .cloned()
                .collect();
            talks.sort_by_key(|(tid, t)| std::cmp::Reverse((t.start, *tid)));
            paged(ctx, "talks", &talks, |(tid, t)| talk_item(ctx, db, *tid, t))
        }
        "attended" => {
            let events = events(|e| &e.attendees);
            paged(ctx, "events", &events, |(eid, e)| {
                event_item(ctx, db, *eid, e)
            })
        }
        "hosted" => {
            let events = events(|e| &e.hosts);
            paged(ctx, "events", &events, |(eid, e)| {
                event_item(ctx, db, *eid, e)
            })
        }
        "talk_comments" => {
            let mut comments: Vec<_> = db
                .comments
                .iter()
                .filter(|c| c.user_id == id && visible_comment(ctx, db, c))
                .cloned()
                .collect();
            comments.sort_by_key(|c| std::cmp::Reverse((c.created, c.id)));
            paged(ctx, "comments", &comments, |c| comment_item(ctx, db, c))
        }
        _ => Err(err(404, "Unknown Subrequest")),
    }
}

/// `GET /languages[/{id}]`.
pub(super) fn languages(ctx: &Ctx, id: Option<u64>) -> ApiResult {
    let item = |(i, (name, code)): (usize, &(&str, &str))| {
        let uri = format!("{}/languages/{}", ctx.api(), i + 1);
        MapBuilder::new()
            .put("name", PVal::str(*name))
            .put("code", PVal::str(*code))
            .put("uri", PVal::str(uri.clone()))
            .put("verbose_uri", PVal::str(format!("{uri}?verbose=yes")))
            .build()
    };
    listing(ctx, "languages", "Language not found", &LANGUAGES, id, item)
}

/// `GET /talk_types[/{id}]`.
pub(super) fn talk_types(ctx: &Ctx, id: Option<u64>) -> ApiResult {
    let item = |(i, title): (usize, &&str)| {
        let uri = format!("{}/talk_types/{}", ctx.api(), i + 1);
        MapBuilder::new()
            .put("title", PVal::str(*title))
            .put("description", PVal::str(*title))
            .put("uri", PVal::str(uri.clone()))
            .put("verbose_uri", PVal::str(format!("{uri}?verbose=yes")))
            .build()
    };
    listing(
        ctx,
        "talk_types",
        "Talk type not found",
        &TALK_TYPES,
        id,
        item,
    )
}

/// A fixed table: all of it, or one row by its 1-based id.
fn listing<T>(
    ctx: &Ctx,
    plural: &str,
    missing: &str,
    rows: &[T],
    id: Option<u64>,
    item: impl Fn((usize, &T)) -> PVal,
) -> ApiResult {
    match id {
        None => {
            let indexed: Vec<usize> = (0..rows.len()).collect();
            paged(ctx, plural, &indexed, |i| item((*i, &rows[*i])))
        }
        Some(id) => {
            let index = usize::try_from(id).unwrap_or(0).wrapping_sub(1);
            let row = rows.get(index).ok_or_else(|| err(404, missing))?;
            single(ctx, plural, item((index, row)))
        }
    }
}
