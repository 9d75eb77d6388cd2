//! The operator port's request head on any bytes (`bulwark-console`): the parser and the Host
//! rule must never panic; a head it takes names an absolute path of at most 2 KiB without its
//! query, and a method the port serves. The text bound of the console's views must hold on any
//! UTF-8.

#![no_main]

use bulwark_console::http::{host_allowed, parse_head};
use bulwark_console::view::{bounded, TEXT_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(head) = parse_head(bytes) {
        assert!(head.path.starts_with('/'), "a relative path was taken");
        assert!(head.path.len() <= 2048, "a path past its bound");
        assert!(
            !head.path.contains(['?', '#']),
            "the query stayed in the path"
        );
        let _ = host_allowed(head.host.as_deref());
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let cut = bounded(text);
        assert!(
            cut.len() <= TEXT_MAX + '…'.len_utf8(),
            "a text past its bound"
        );
        assert!(
            text.starts_with(cut.trim_end_matches('…')),
            "bounded changed the text"
        );
    }
});
