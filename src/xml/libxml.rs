//! Every call into libxml2 that needs `unsafe` lives here: strict parsing, streaming XSD
//! validation with collected errors, exclusive c14n streamed into a digest, and the
//! visibility callback that leaves the enveloped signature out.
//!
//! libxml types are neither `Send` nor `Sync`: every function builds what it needs on the
//! calling thread and returns owned data only.
#![allow(unsafe_code)]

use libxml::bindings;
use libxml::parser::{Parser, ParserOptions};
use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
use libxml::tree::c14n::{CanonicalizationMode, CanonicalizationOptions};
use libxml::tree::{Document, Node};
use ring::digest;
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int};

use crate::xml::schema::SchemaErrors;

/// Hands libxml2's allocations to mimalloc. libxml2 allocates and frees per parsed node
/// and validated value; with glibc's malloc that was about 8 % of a first publication's CPU
/// (100k Zorgaanbieders: 0.5 of 12.6 core-seconds less, 3 % sooner, the same peak RSS;
/// Rust's own allocations stay with glibc, where mimalloc raised the peak by 60–150 MB).
///
/// # Safety
/// Call it before any other libxml2 call and before any other thread exists: memory
/// libxml2 allocated before it would be freed by the wrong allocator. `main` calls it
/// before any command runs.
pub unsafe fn allocate_with_mimalloc() {
    // SAFETY: four functions with libxml2's signatures (mi_strdup, like libxml2's own,
    // returns NULL for NULL), set while no libxml2 memory exists (the caller's promise);
    // libxml2 frees only through xmlFree what it got from xmlMalloc.
    let rc = unsafe {
        bindings::xmlMemSetup(
            Some(libmimalloc_sys::mi_free),
            Some(libmimalloc_sys::mi_malloc),
            Some(libmimalloc_sys::mi_realloc),
            Some(libmimalloc_sys::mi_strdup),
        )
    };
    if rc != 0 {
        tracing::warn!("libxml2 refused mimalloc's functions (xmlMemSetup {rc}); it keeps malloc");
    }
}

fn strict() -> ParserOptions<'static> {
    ParserOptions {
        recover: false,
        no_net: true,
        // Short text inline in its node: a list is millions of small text nodes.
        compact: true,
        ..Default::default()
    }
}

pub fn parse_strict(bytes: &[u8]) -> Result<Document, String> {
    crate::xml::input::check_xml(bytes).map_err(|e| e.to_string())?;
    match Parser::default().parse_string_with_diagnostics(bytes, strict()) {
        Ok((doc, _)) => Ok(doc),
        Err(libxml::parser::XmlParseFailure::ParseFailed(errs)) => Err(errs
            .into_iter()
            .take(5)
            .map(|e| {
                format!(
                    "line {}: {}",
                    e.line.unwrap_or(0),
                    e.message.unwrap_or_default().trim()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")),
        Err(e) => Err(format!("{e:?}")),
    }
}

pub fn exc_c14n() -> CanonicalizationOptions {
    CanonicalizationOptions {
        mode: CanonicalizationMode::ExclusiveCanonical1_0,
        with_comments: false,
        inclusive_ns_prefixes: vec![],
    }
}

unsafe extern "C" fn hide_subtree(
    user: *mut c_void,
    node: libxml::bindings::xmlNodePtr,
    parent: libxml::bindings::xmlNodePtr,
) -> c_int {
    // SAFETY: libxml2 passes live nodes of the document being canonicalised; `user` is the
    // Signature node of that document. Namespace declarations are not xmlNodes, so for them
    // we walk up from the parent instead.
    unsafe {
        let hidden = user as libxml::bindings::xmlNodePtr;
        let mut cur = node;
        if cur.is_null() || (*cur).type_ == libxml::bindings::xmlElementType_XML_NAMESPACE_DECL {
            cur = parent;
        }
        while !cur.is_null() {
            if cur == hidden {
                return 0;
            }
            cur = (*cur).parent;
        }
        1
    }
}

/// SHA-256 of the exclusive canonical form of `doc` without the subtree `hidden` (the
/// enveloped-signature transform), streamed from libxml2 into the digest: the canonical
/// form, as large as the document, is never held in memory.
pub fn c14n_sha256_without(doc: &Document, hidden: &Node) -> Result<Vec<u8>, String> {
    unsafe extern "C" fn write(
        ctx: *mut c_void,
        buf: *const std::os::raw::c_char,
        len: c_int,
    ) -> c_int {
        // SAFETY: `ctx` is the digest context below, alive for the whole c14n run; libxml2
        // passes `len` valid bytes at `buf`.
        unsafe {
            if len > 0 && !ctx.is_null() && !buf.is_null() {
                let d = &mut *(ctx as *mut digest::Context);
                d.update(std::slice::from_raw_parts(buf as *const u8, len as usize));
            }
        }
        len
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    // SAFETY: the output buffer writes only into `ctx` and is closed (flushed and freed)
    // before `ctx` is used again; `hide_subtree` receives the Signature node of `doc`.
    let (rc, closed) = unsafe {
        let out = libxml::bindings::xmlOutputBufferCreateIO(
            Some(write),
            None,
            &mut ctx as *mut digest::Context as *mut c_void,
            std::ptr::null_mut(),
        );
        if out.is_null() {
            return Err("libxml2 could not allocate an output buffer".into());
        }
        let rc = libxml::bindings::xmlC14NExecute(
            doc.doc_ptr(),
            Some(hide_subtree),
            hidden.node_ptr() as *mut c_void,
            libxml::bindings::xmlC14NMode_XML_C14N_EXCLUSIVE_1_0 as c_int,
            std::ptr::null_mut(),
            0,
            out,
        );
        (rc, libxml::bindings::xmlOutputBufferClose(out))
    };
    if rc < 0 || closed < 0 {
        return Err("document could not be canonicalised".into());
    }
    Ok(ctx.finish().as_ref().to_vec())
}

/// The libxml2 version this binary was built against (what validated a document).
pub fn version() -> &'static str {
    std::str::from_utf8(bindings::LIBXML_DOTTED_VERSION)
        .unwrap_or("unknown")
        .trim_end_matches('\0')
}

pub fn compile(xsd: &str) -> Result<SchemaValidationContext, SchemaErrors> {
    let mut parser = SchemaParserContext::from_buffer(xsd);
    SchemaValidationContext::from_parser(&mut parser).map_err(|errs| {
        SchemaErrors(
            errs.into_iter()
                .map(|e| {
                    format!(
                        "schema does not compile: {}",
                        e.message.unwrap_or_default().trim()
                    )
                })
                .collect(),
        )
    })
}

struct ParseErrors(Vec<String>);

/// What libxml2 reads a document from, a chunk at a time: given the whole document as one
/// buffer, libxml2 would copy all of it first (a 270 MB list held twice, and at 100k
/// Zorgaanbieders hundreds of MB of fresh pages per publication).
struct Reader<'a> {
    rest: &'a [u8],
}

unsafe extern "C" fn read_chunk(ctx: *mut c_void, buffer: *mut c_char, len: c_int) -> c_int {
    // SAFETY: `ctx` is the `Reader` `validate_stream` installed for the duration of the
    // call; libxml2 passes a buffer with room for `len` bytes.
    unsafe {
        if ctx.is_null() || buffer.is_null() || len < 0 {
            return -1;
        }
        let reader = &mut *(ctx as *mut Reader);
        let n = reader.rest.len().min(len as usize);
        std::ptr::copy_nonoverlapping(reader.rest.as_ptr(), buffer as *mut u8, n);
        reader.rest = &reader.rest[n..];
        n as c_int
    }
}

unsafe extern "C" fn collect_parse_error(user: *mut c_void, error: *mut bindings::_xmlError) {
    // SAFETY: `user` is the `ParseErrors` installed by `validate_stream` for the duration of
    // the call, and libxml2 passes a valid error record.
    unsafe {
        if user.is_null() || error.is_null() {
            return;
        }
        let errs = &mut *(user as *mut ParseErrors);
        if errs.0.len() >= 20 {
            return;
        }
        let msg = if (*error).message.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr((*error).message)
                .to_string_lossy()
                .trim()
                .to_string()
        };
        errs.0.push(format!(
            "line {}: {}",
            (*error).line,
            crate::clip::clip_quoted(&msg)
        ));
    }
}

/// Validate a document against an XSD with libxml2's streaming (SAX) validator: no DOM is
/// built, so memory stays flat for large lists.
pub fn validate_stream(xsd: &str, bytes: &[u8]) -> Result<(), SchemaErrors> {
    crate::xml::input::check_xml(bytes).map_err(|e| SchemaErrors(vec![e.0]))?;
    // libxml2 counts a document's bytes and lines in C ints.
    if i32::try_from(bytes.len()).is_err() {
        return Err(SchemaErrors(vec!["document larger than 2 GiB".into()]));
    }
    let mut ctx = compile(xsd)?;
    let mut parse_errors = ParseErrors(Vec::new());
    let mut reader = Reader { rest: bytes };
    // SAFETY: libxml2 reads `bytes` through `read_chunk` from `reader`, which outlives
    // the call (the input buffer has no close callback, so nothing frees `reader`);
    // xmlSchemaValidateStream takes ownership of the input buffer and frees it. The
    // structured error handler is reset before `parse_errors` goes out of scope.
    let rc = unsafe {
        let buf = bindings::xmlParserInputBufferCreateIO(
            Some(read_chunk),
            None,
            &mut reader as *mut Reader as *mut c_void,
            bindings::xmlCharEncoding_XML_CHAR_ENCODING_NONE,
        );
        if buf.is_null() {
            return Err(SchemaErrors(vec![
                "libxml2 could not allocate an input buffer".into(),
            ]));
        }
        bindings::xmlSetStructuredErrorFunc(
            &mut parse_errors as *mut ParseErrors as *mut c_void,
            Some(collect_parse_error),
        );
        let rc = bindings::xmlSchemaValidateStream(
            ctx.as_ptr(),
            buf,
            bindings::xmlCharEncoding_XML_CHAR_ENCODING_NONE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        bindings::xmlSetStructuredErrorFunc(std::ptr::null_mut(), None);
        rc
    };
    let validation = ctx.drain_errors();
    if rc == 0 && validation.is_empty() && parse_errors.0.is_empty() {
        return Ok(());
    }
    let mut msgs = parse_errors.0;
    msgs.extend(validation.into_iter().take(20).map(|e| {
        format!(
            "line {}: {}",
            e.line.unwrap_or(0),
            crate::clip::clip_quoted(e.message.unwrap_or_default().trim())
        )
    }));
    if msgs.is_empty() {
        msgs.push(format!("libxml2 schema validation failed with status {rc}"));
    }
    Err(SchemaErrors(msgs))
}
