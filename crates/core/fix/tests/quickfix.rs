//! The codec against a real FIX engine: QuickFIX (its Python binding, the wheel in
//! `../shared/wheels/`, which `.ci/run` installs). QuickFIX builds messages that `decode` must
//! read field for field, and QuickFIX parses and validates, against its own FIX 4.4 data
//! dictionary, the messages `encode` writes. Without a Python that imports `quickfix` the test
//! says SKIPPED (CI installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use bulwark_fix::{decode, encode, BeginString, Decoded, Field, Limits, SOH};

/// The QuickFIX side: `make` prints, one per line in hex, messages QuickFIX built; `check`
/// reads hex lines and prints, per line, `OK <MsgType>` when QuickFIX parses and validates the
/// message, or `ERR <reason>`.
const SCRIPT: &str = r#"
import os, sys, sysconfig
import quickfix as fix
spec = os.path.join(sysconfig.get_paths()["data"], "share", "quickfix", "FIX44.xml")
dd = fix.DataDictionary(spec)

def header(m, msg_type, seq):
    h = m.getHeader()
    h.setField(fix.BeginString("FIX.4.4"))
    h.setField(fix.MsgType(msg_type))
    h.setField(fix.SenderCompID("TRADER"))
    h.setField(fix.TargetCompID("BULWARK"))
    h.setField(fix.MsgSeqNum(seq))
    h.setField(fix.SendingTime())

if sys.argv[1] == "make":
    order = fix.Message()
    header(order, "D", 7)
    order.setField(fix.ClOrdID("order-1"))
    order.setField(fix.Side(fix.Side_BUY))
    order.setField(fix.TransactTime())
    order.setField(fix.OrdType(fix.OrdType_LIMIT))
    order.setField(fix.Symbol("BTC-PERP"))
    order.setField(fix.OrderQty(2))
    order.setField(fix.Price(60000.5))
    logon = fix.Message()
    header(logon, "A", 1)
    logon.setField(fix.EncryptMethod(0))
    logon.setField(fix.HeartBtInt(30))
    raw = "sig=\x01=ature"
    logon.setField(fix.RawDataLength(len(raw)))
    logon.setField(fix.RawData(raw))
    for m in (order, logon):
        print(m.toString().encode("latin-1").hex())
else:
    for line in sys.stdin:
        raw = bytes.fromhex(line.strip()).decode("latin-1")
        try:
            m = fix.Message(raw, dd, True)
            dd.validate(m)
            print("OK", m.getHeader().getField(35))
        except Exception as e:
            print("ERR", type(e).__name__, e)
"#;

fn python() -> Option<String> {
    bulwark_testkit::python::python_with(&["quickfix"])
}

fn run(python: &str, mode: &str, input: &str) -> String {
    let mut child = Command::new(python)
        .args(["-c", SCRIPT, mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writes");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn header(msg_type: &str, seq: u32) -> Vec<Field> {
    vec![
        Field::new(35, msg_type),
        Field::new(49, "BULWARK"),
        Field::new(56, "TRADER"),
        Field::new(34, seq.to_string()),
        Field::new(52, "20261206-14:30:00.123"),
    ]
}

#[test]
fn quickfix_reads_what_we_write_and_we_read_what_it_writes() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have a Python with quickfix (.ci/run installs the wheel)"
        );
        eprintln!(
            "SKIPPED: no Python with quickfix (pip install ../shared/wheels/quickfix-1.16.0-cp311-cp311-linux_x86_64.whl); CI installs it"
        );
        return;
    };
    // QuickFIX writes, we read.
    let made = run(&python, "make", "");
    let messages: Vec<Vec<u8>> = made.lines().map(|l| hex::decode(l).unwrap()).collect();
    assert_eq!(messages.len(), 2, "{made}");
    let read: Vec<_> = messages
        .iter()
        .map(|bytes| match decode(bytes, &Limits::SESSION) {
            Ok(Decoded::Message(message, used)) => {
                assert_eq!(used, bytes.len());
                message
            }
            other => panic!("QuickFIX's message does not decode: {other:?}"),
        })
        .collect();
    let order = &read[0];
    assert_eq!(order.msg_type(), b"D");
    assert_eq!(order.get_str(11), Some("order-1"));
    assert_eq!(order.get_str(54), Some("1"));
    assert_eq!(order.get_str(55), Some("BTC-PERP"));
    assert_eq!(order.get_str(44), Some("60000.5"));
    let logon = &read[1];
    assert_eq!(logon.msg_type(), b"A");
    assert_eq!(logon.get(96), Some(&b"sig=\x01=ature"[..]));
    // Re-encoding QuickFIX's messages gives its bytes back.
    for (message, bytes) in read.iter().zip(&messages) {
        assert_eq!(&message.encode().unwrap(), bytes);
    }

    // We write, QuickFIX parses and validates against its FIX 4.4 dictionary.
    let mut order = header("D", 2);
    order.extend([
        Field::new(11, "order-2"),
        Field::new(55, "BTC-PERP"),
        Field::new(54, "2"),
        Field::new(60, "20261206-14:30:00.123"),
        Field::new(38, "3"),
        Field::new(40, "2"),
        Field::new(44, "59000"),
    ]);
    let mut report = header("8", 3);
    report.extend([
        Field::new(37, "42"),
        Field::new(11, "order-2"),
        Field::new(17, "exec-1"),
        Field::new(150, "0"),
        Field::new(39, "0"),
        Field::new(55, "BTC-PERP"),
        Field::new(54, "2"),
        Field::new(151, "3"),
        Field::new(14, "0"),
        Field::new(6, "0"),
    ]);
    let raw = [b's', SOH, b'=', b'g'];
    let mut logon = header("A", 1);
    logon.extend([
        Field::new(98, "0"),
        Field::new(108, "30"),
        Field::new(95, raw.len().to_string()),
        Field::new(96, raw.to_vec()),
    ]);
    let ours = [order, report, logon];
    let input: String = ours
        .iter()
        .map(|fields| hex::encode(encode(BeginString::Fix44, fields).unwrap()) + "\n")
        .collect();
    let checked = run(&python, "check", &input);
    let verdicts: Vec<&str> = checked.lines().collect();
    assert_eq!(verdicts, ["OK D", "OK 8", "OK A"], "{checked}");
    // QuickFIX's dictionary refuses an order without OrdType (40): the codec frames it, the
    // session layer must check what each message type needs.
    let short: Vec<Field> = ours[0].iter().filter(|f| f.tag != 40).cloned().collect();
    let checked = run(
        &python,
        "check",
        &(hex::encode(encode(BeginString::Fix44, &short).unwrap()) + "\n"),
    );
    assert!(checked.starts_with("ERR"), "{checked}");
    // And QuickFIX refuses what we refuse: a wrong checksum.
    let mut broken = encode(BeginString::Fix44, &ours[0]).unwrap();
    let at = broken.len() - 2;
    broken[at] = if broken[at] == b'9' {
        b'0'
    } else {
        broken[at] + 1
    };
    assert!(decode(&broken, &Limits::SESSION).is_err());
    let checked = run(&python, "check", &(hex::encode(&broken) + "\n"));
    assert!(checked.starts_with("ERR"), "{checked}");
}
