//! `utipc decode`: prints every TIPC message of pcap/pcapng captures, descending into bundles,
//! tunnels and first fragments, and with `--check` proves that the codec re-emits each message
//! byte for byte.
//!
//! Output: one line (or one JSON object) per message, then a last line
//! `frames=N tipc=N ok=N failed=N`. `tipc` counts every message printed, nested ones included;
//! `failed` counts those that did not parse or, with `--check`, did not re-emit identically.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use utipc_proto::wire::describe::{Describe, Fields, Value};
use utipc_proto::wire::message::Nested;
use utipc_proto::wire::{Frame, MessageRepr, Packet};

use crate::capture::{self, CapturedFrame, Carrier};

/// Nesting is at most bundle → tunnel → fragment in practice; deeper is hostile input.
const MAX_DEPTH: usize = 4;

/// Options of one decode run.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Re-emit every message and compare byte for byte.
    pub check: bool,
    /// One JSON object per message instead of a text line.
    pub json: bool,
    /// Capture files, decoded in order.
    pub files: Vec<PathBuf>,
}

/// Totals of a decode run: the numbers of the last line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Frames read from the files.
    pub frames: usize,
    /// TIPC messages printed (nested ones included).
    pub tipc: usize,
    /// Messages that parsed (and, with `--check`, re-emitted identically).
    pub ok: usize,
    /// Messages that did not.
    pub failed: usize,
    /// Files that could not be read at all.
    pub unreadable: usize,
}

impl Summary {
    /// Whether the run should exit with status 0.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.unreadable == 0
    }
}

/// Decodes every file, writing lines to `out` and problems with files to `err`.
pub fn run(opts: &DecodeOptions, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<Summary> {
    let mut sum = Summary::default();
    for path in &opts.files {
        match capture::read_capture(path) {
            Ok((frames, stats)) => {
                sum.frames += stats.frames;
                for f in &frames {
                    decode_frame(opts, path, f, out, &mut sum)?;
                }
            }
            Err(e) => {
                writeln!(err, "utipc decode: {}: {e}", path.display())?;
                sum.unreadable += 1;
            }
        }
    }
    writeln!(
        out,
        "frames={} tipc={} ok={} failed={}",
        sum.frames, sum.tipc, sum.ok, sum.failed
    )?;
    Ok(sum)
}

/// Outcome of one message.
enum Outcome {
    /// Parsed; with `--check`, re-emitted identically (or not checked: header only).
    Ok,
    /// Re-emitted bytes differ from the received ones, first at this offset.
    Differs(usize),
    /// Did not parse.
    Error(String),
}

struct Line<'a> {
    file: &'a Path,
    frame: &'a CapturedFrame,
    depth: usize,
    user: Option<(u8, &'static str)>,
    mtype: Option<(u8, &'static str)>,
    size: usize,
    partial: bool,
    fields: Fields,
    outcome: Outcome,
}

fn decode_frame(
    opts: &DecodeOptions,
    file: &Path,
    f: &CapturedFrame,
    out: &mut dyn Write,
    sum: &mut Summary,
) -> io::Result<()> {
    let bytes = &f.tipc[..];
    match Frame::parse(bytes) {
        Ok(Frame::Plain(m)) => {
            let p = Packet::new_unchecked(bytes);
            let expected = p.message();
            let outcome = check(opts, m.to_vec(), expected);
            emit_message(
                opts,
                file,
                f,
                0,
                &m,
                expected.len(),
                false,
                outcome,
                out,
                sum,
            )?;
            descend(opts, file, f, &m, 1, out, sum)
        }
        Ok(Frame::Encrypted(e)) => {
            let outcome = check(opts, Frame::Encrypted(e).to_vec(), bytes);
            let line = Line {
                file,
                frame: f,
                depth: 0,
                user: Some((e.user, "ENCRYPTED")),
                mtype: None,
                size: bytes.len(),
                partial: false,
                fields: e.describe(),
                outcome,
            };
            write_line(opts, &line, out, sum)
        }
        Err(e) => {
            let line = Line {
                file,
                frame: f,
                depth: 0,
                user: None,
                mtype: None,
                size: bytes.len(),
                partial: false,
                fields: Vec::new(),
                outcome: Outcome::Error(e.to_string()),
            };
            write_line(opts, &line, out, sum)
        }
    }
}

fn check(
    opts: &DecodeOptions,
    emitted: utipc_proto::wire::Result<Vec<u8>>,
    expected: &[u8],
) -> Outcome {
    if !opts.check {
        return Outcome::Ok;
    }
    match emitted {
        Ok(v) if v == expected => Outcome::Ok,
        Ok(v) => {
            let at = v
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(v.len().min(expected.len()));
            Outcome::Differs(at)
        }
        Err(e) => Outcome::Error(format!("re-emit failed: {e}")),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "internal helper threading the line context"
)]
fn emit_message(
    opts: &DecodeOptions,
    file: &Path,
    f: &CapturedFrame,
    depth: usize,
    m: &MessageRepr<'_>,
    size: usize,
    partial: bool,
    outcome: Outcome,
    out: &mut dyn Write,
    sum: &mut Summary,
) -> io::Result<()> {
    let user = m.user();
    let line = Line {
        file,
        frame: f,
        depth,
        user: Some((user.into(), user.name())),
        mtype: Some((m.msg_type(), m.type_name())),
        size,
        partial,
        fields: m.describe(),
        outcome,
    };
    write_line(opts, &line, out, sum)
}

fn descend(
    opts: &DecodeOptions,
    file: &Path,
    f: &CapturedFrame,
    m: &MessageRepr<'_>,
    depth: usize,
    out: &mut dyn Write,
    sum: &mut Summary,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for n in m.nested() {
        match n {
            Nested::Message(p) => match MessageRepr::parse(&p) {
                Ok(inner) => {
                    let outcome = check(opts, inner.to_vec(), p.message());
                    emit_message(
                        opts,
                        file,
                        f,
                        depth,
                        &inner,
                        p.size(),
                        false,
                        outcome,
                        out,
                        sum,
                    )?;
                    descend(opts, file, f, &inner, depth + 1, out, sum)?;
                }
                Err(e) => error_line(opts, file, f, depth, p.size(), e.to_string(), out, sum)?,
            },
            Nested::HeaderOnly(p) => match MessageRepr::parse(&p) {
                Ok(inner) => {
                    emit_message(
                        opts,
                        file,
                        f,
                        depth,
                        &inner,
                        p.size(),
                        true,
                        Outcome::Ok,
                        out,
                        sum,
                    )?;
                }
                Err(e) => error_line(opts, file, f, depth, p.size(), e.to_string(), out, sum)?,
            },
            Nested::Malformed(e) => error_line(opts, file, f, depth, 0, e.to_string(), out, sum)?,
        }
    }
    Ok(())
}

#[allow(
    clippy::too_many_arguments,
    reason = "internal helper threading the line context"
)]
fn error_line(
    opts: &DecodeOptions,
    file: &Path,
    f: &CapturedFrame,
    depth: usize,
    size: usize,
    msg: String,
    out: &mut dyn Write,
    sum: &mut Summary,
) -> io::Result<()> {
    let line = Line {
        file,
        frame: f,
        depth,
        user: None,
        mtype: None,
        size,
        partial: false,
        fields: Vec::new(),
        outcome: Outcome::Error(msg),
    };
    write_line(opts, &line, out, sum)
}

fn write_line(
    opts: &DecodeOptions,
    l: &Line<'_>,
    out: &mut dyn Write,
    sum: &mut Summary,
) -> io::Result<()> {
    sum.tipc += 1;
    match l.outcome {
        Outcome::Ok => sum.ok += 1,
        _ => sum.failed += 1,
    }
    if opts.json {
        writeln!(out, "{}", json_line(opts, l))
    } else {
        writeln!(out, "{}", text_line(opts, l))
    }
}

fn carrier_text(c: &Carrier) -> String {
    match c {
        Carrier::Ethernet { src, dst, vlans } => {
            let mac = |m: &[u8; 6]| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            };
            let mut s = format!("eth {} > {}", mac(src), mac(dst));
            for v in vlans {
                s.push_str(&format!(" vlan={v}"));
            }
            s
        }
        Carrier::Udp { src, dst, .. } => format!("udp {src} > {dst}"),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::U(n) => n.to_string(),
        Value::Hex(n) => format!("{n:08x}"),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Str(s) => {
            if s.is_empty() || s.contains(' ') {
                format!("{s:?}")
            } else {
                s.clone()
            }
        }
        Value::List(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|fields| {
                    let parts: Vec<String> = fields.iter().map(|(_, v)| value_text(v)).collect();
                    format!("{{{}}}", parts.join(","))
                })
                .collect();
            format!("[{}]", inner.join(" "))
        }
    }
}

fn text_line(opts: &DecodeOptions, l: &Line<'_>) -> String {
    let mut s = format!("{}", l.frame.number);
    s.push_str(&"  ".repeat(l.depth + 1));
    if l.depth == 0 {
        s.push_str(&format!("[{}] ", carrier_text(&l.frame.link)));
    }
    match (l.user, l.mtype) {
        (Some((_, un)), Some((_, tn))) => s.push_str(&format!("{un}/{tn}")),
        (Some((_, un)), None) => s.push_str(un),
        _ => s.push_str("MALFORMED"),
    }
    s.push_str(&format!(" size={}", l.size));
    if l.partial {
        s.push_str(" header_only=1");
    }
    for (k, v) in &l.fields {
        s.push_str(&format!(" {k}={}", value_text(v)));
    }
    match &l.outcome {
        Outcome::Ok if opts.check => s.push_str(" check=ok"),
        Outcome::Ok => {}
        Outcome::Differs(at) => s.push_str(&format!(" check=DIFFERS@{at}")),
        Outcome::Error(e) => s.push_str(&format!(" error={e:?}")),
    }
    if opts.files.len() > 1 {
        s.push_str(&format!(" file={}", l.file.display()));
    }
    s
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::U(n) => Json::from(*n),
        Value::Hex(n) => Json::from(format!("{n:08x}")),
        Value::Bool(b) => Json::from(*b),
        Value::Str(s) => Json::from(s.clone()),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|fields| {
                    let mut m = Map::new();
                    for (k, v) in fields {
                        m.insert((*k).to_owned(), value_json(v));
                    }
                    Json::Object(m)
                })
                .collect(),
        ),
    }
}

fn json_line(opts: &DecodeOptions, l: &Line<'_>) -> String {
    let mut m = Map::new();
    m.insert("file".into(), Json::from(l.file.display().to_string()));
    m.insert("frame".into(), Json::from(l.frame.number));
    m.insert("depth".into(), Json::from(l.depth));
    m.insert("timestamp_ns".into(), Json::from(l.frame.timestamp_ns));
    m.insert("carrier".into(), Json::from(carrier_text(&l.frame.link)));
    if let Some((u, name)) = l.user {
        m.insert("user".into(), Json::from(u));
        m.insert("user_name".into(), Json::from(name));
    }
    if let Some((t, name)) = l.mtype {
        m.insert("mtype".into(), Json::from(t));
        m.insert("mtype_name".into(), Json::from(name));
    }
    m.insert("size".into(), Json::from(l.size));
    if l.partial {
        m.insert("header_only".into(), Json::from(true));
    }
    for (k, v) in &l.fields {
        m.entry((*k).to_owned()).or_insert_with(|| value_json(v));
    }
    match &l.outcome {
        Outcome::Ok if opts.check => {
            m.insert("check".into(), Json::from("ok"));
        }
        Outcome::Ok => {}
        Outcome::Differs(at) => {
            m.insert("check".into(), Json::from("differs"));
            m.insert("differs_at".into(), Json::from(*at));
        }
        Outcome::Error(e) => {
            m.insert("error".into(), Json::from(e.clone()));
        }
    }
    Json::Object(m).to_string()
}
