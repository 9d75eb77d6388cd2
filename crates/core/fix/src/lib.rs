//! FIX tag=value framing for the gateway (issue #15), sans-IO.
//!
//! A FIX message is a run of `tag=value` fields, each ended by SOH (byte 1):
//! `8=<BeginString>` `9=<BodyLength>` `35=<MsgType>` … `10=<CheckSum>`. BodyLength counts the
//! bytes after the `9=` field up to and including the SOH before `10=`; CheckSum is the sum of
//! every byte before `10=`, modulo 256, written as three digits.
//!
//! [`decode`] takes the bytes a connection has buffered and returns one message and how many
//! bytes it used, [`Decoded::Incomplete`] when more bytes are needed, or a typed [`FixError`]
//! (the caller closes the connection: FIX has no way to find the next message after a framing
//! error). It checks, before it stores anything:
//! - the size against [`Limits`] as soon as BodyLength is read (so a peer announcing a huge
//!   message is refused before its body arrives), and the field count;
//! - the BeginString (FIX.4.4: FIXT.1.1 has other data fields, not in [`DATA_FIELDS`], and is
//!   refused until it is built), BodyLength, the trailer and CheckSum;
//! - every tag (digits, no leading zero, at most 9 digits), every value (not empty, no SOH), and
//!   that MsgType is the first body field;
//! - data fields (the value may hold any byte, SOH included): a data field must follow its
//!   length field at once, and take exactly that many bytes (the length written as digits
//!   without a leading zero).
//!
//! It does not check which fields a message type needs, their order beyond MsgType, or repeated
//! tags: that is the session layer's (QuickFIX's dictionary validation refuses those too).
//!
//! [`encode`] writes a message from its body fields, computing BodyLength and CheckSum, and
//! refuses what [`decode`] would refuse. Nothing here panics on any input.

use std::fmt;

pub mod logon;
pub mod session;
pub mod time;

/// The field separator.
pub const SOH: u8 = 1;

/// Tags of the standard header and trailer this module writes itself.
pub const TAG_BEGIN_STRING: u32 = 8;
/// BodyLength.
pub const TAG_BODY_LENGTH: u32 = 9;
/// MsgType: the first body field.
pub const TAG_MSG_TYPE: u32 = 35;
/// CheckSum.
pub const TAG_CHECKSUM: u32 = 10;

/// Largest tag value (FIX tags are positive integers; nine digits are plenty).
pub const TAG_MAX: u32 = 999_999_999;

/// The length fields and the data fields they announce, every one of FIX 4.4's (the `DATA` and
/// `XMLDATA` fields of its dictionary): (length tag, data tag). A data field's value is raw
/// bytes and may hold SOH.
pub const DATA_FIELDS: &[(u32, u32)] = &[
    (90, 91),   // SecureDataLen, SecureData
    (93, 89),   // SignatureLength, Signature
    (95, 96),   // RawDataLength, RawData
    (212, 213), // XmlDataLen, XmlData
    (348, 349), // EncodedIssuerLen, EncodedIssuer
    (350, 351), // EncodedSecurityDescLen, EncodedSecurityDesc
    (352, 353), // EncodedListExecInstLen, EncodedListExecInst
    (354, 355), // EncodedTextLen, EncodedText
    (356, 357), // EncodedSubjectLen, EncodedSubject
    (358, 359), // EncodedHeadlineLen, EncodedHeadline
    (360, 361), // EncodedAllocTextLen, EncodedAllocText
    (362, 363), // EncodedUnderlyingIssuerLen, EncodedUnderlyingIssuer
    (364, 365), // EncodedUnderlyingSecurityDescLen, EncodedUnderlyingSecurityDesc
    (445, 446), // EncodedListStatusTextLen, EncodedListStatusText
    (618, 619), // EncodedLegIssuerLen, EncodedLegIssuer
    (621, 622), // EncodedLegSecurityDescLen, EncodedLegSecurityDesc
];

/// The data tag a length tag announces, if it is one.
fn data_tag_of(length_tag: u32) -> Option<u32> {
    DATA_FIELDS
        .iter()
        .find(|(length, _)| *length == length_tag)
        .map(|(_, data)| *data)
}

/// Whether `tag` is a data field (its value is announced by a length field).
fn is_data_tag(tag: u32) -> bool {
    DATA_FIELDS.iter().any(|(_, data)| *data == tag)
}

/// The FIX versions the gateway speaks (FIXT.1.1 / FIX 5.0 SP2 would need its own data fields,
/// such as the Logon's EncryptedPassword, and is not built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeginString {
    /// `FIX.4.4`.
    Fix44,
}

impl BeginString {
    /// The field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            BeginString::Fix44 => "FIX.4.4",
        }
    }

    fn parse(value: &[u8]) -> Option<Self> {
        match value {
            b"FIX.4.4" => Some(BeginString::Fix44),
            _ => None,
        }
    }
}

/// How much one message may take. A gateway uses a small limit before logon (the issue asks for
/// at most 4 KiB) and a larger one after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of a whole message, header and trailer included.
    pub message_bytes_max: usize,
    /// Most body fields (MsgType included).
    pub fields_max: usize,
}

impl Limits {
    /// Before logon: 4 KiB, 64 fields.
    pub const BEFORE_LOGON: Limits = Limits {
        message_bytes_max: 4 * 1024,
        fields_max: 64,
    };
    /// A logged-on session: 64 KiB, 1 024 fields.
    pub const SESSION: Limits = Limits {
        message_bytes_max: 64 * 1024,
        fields_max: 1024,
    };
}

/// One body field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The tag.
    pub tag: u32,
    /// The value's bytes (not empty; SOH only in a data field).
    pub value: Vec<u8>,
}

impl Field {
    /// A field from a tag and a text value.
    pub fn new(tag: u32, value: impl Into<Vec<u8>>) -> Self {
        Field {
            tag,
            value: value.into(),
        }
    }
}

/// A decoded message: its version and its body fields in order (MsgType first; BeginString,
/// BodyLength and CheckSum are checked and not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The version.
    pub begin: BeginString,
    /// The body fields, in wire order.
    pub fields: Vec<Field>,
}

impl Message {
    /// The value of the first field with `tag`.
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| f.value.as_slice())
    }

    /// The value of the first field with `tag`, if it is UTF-8.
    pub fn get_str(&self, tag: u32) -> Option<&str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// MsgType (always present in a decoded message).
    pub fn msg_type(&self) -> &[u8] {
        self.get(TAG_MSG_TYPE).unwrap_or_default()
    }

    /// The wire bytes of this message ([`encode`]).
    pub fn encode(&self) -> Result<Vec<u8>, FixError> {
        encode(self.begin, &self.fields)
    }
}

/// What [`decode`] found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole message, and how many bytes of the buffer it took.
    Message(Message, usize),
    /// Not enough bytes yet.
    Incomplete,
}

/// Why bytes are not a FIX message. Every case closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FixError {
    /// The bytes do not start with `8=`.
    #[error("a FIX message starts with 8=")]
    NoBeginString,
    /// A BeginString other than FIX.4.4.
    #[error("BeginString {0:?} is not FIX.4.4")]
    Version(String),
    /// BodyLength is missing, not a number, or not the second field.
    #[error("BodyLength (9) must follow BeginString as a number")]
    BodyLength,
    /// The message is larger than the limit.
    #[error("message of {len} bytes is over the limit of {max}")]
    TooLong {
        /// Its length (as announced).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More body fields than the limit.
    #[error("more than {0} fields")]
    TooManyFields(usize),
    /// The trailer is not `10=` three digits and SOH right where BodyLength says the body ends.
    #[error("CheckSum (10) is not where BodyLength says the body ends")]
    Trailer,
    /// The checksum does not match. The frame is whole: a logged-on session may skip `used`
    /// bytes and go on (FIX ignores such a message).
    #[error("CheckSum {got:03} does not match {want:03}")]
    CheckSum {
        /// What the message says (000 to 999).
        got: u16,
        /// What its bytes sum to.
        want: u8,
        /// The bytes the message takes.
        used: usize,
    },
    /// A field is not `tag=value` SOH, or its tag is not a valid tag.
    #[error("malformed field at byte {0}")]
    Field(usize),
    /// A tag to encode is 0 or above [`TAG_MAX`].
    #[error("tag {0} is not a FIX tag")]
    Tag(u32),
    /// A field has an empty value.
    #[error("tag {0} has an empty value")]
    EmptyValue(u32),
    /// MsgType is not the first body field.
    #[error("MsgType (35) must be the first body field")]
    MsgTypeFirst,
    /// A header or trailer tag inside the body.
    #[error("tag {0} may not appear in the body")]
    Reserved(u32),
    /// A data field without its length field right before it, or a length that does not fit.
    #[error("data field {0} does not match its length field")]
    DataField(u32),
    /// An encoded value holds SOH (outside a data field).
    #[error("tag {0}: a value may not hold SOH")]
    Soh(u32),
}

/// Reads `tag=` at `at`: the tag and the index after `=`. Tags are digits without a leading
/// zero, at most nine of them.
fn read_tag(buf: &[u8], at: usize) -> Result<Option<(u32, usize)>, FixError> {
    let mut tag: u32 = 0;
    let mut i = at;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'=' if i > at => return Ok(Some((tag, i + 1))),
            b'0'..=b'9' => {
                if (i == at && b == b'0') || i - at >= 9 {
                    return Err(FixError::Field(at));
                }
                tag = tag * 10 + u32::from(b - b'0');
            }
            _ => return Err(FixError::Field(at)),
        }
        i += 1;
    }
}

/// Reads a value from `at` up to SOH: the value's end (exclusive) and the index after SOH, or
/// `None` if no SOH within `max` bytes of the buffer yet.
fn read_value(buf: &[u8], at: usize, max: usize) -> Option<(usize, usize)> {
    let end = buf.len().min(at.saturating_add(max));
    buf.get(at..end)?
        .iter()
        .position(|b| *b == SOH)
        .map(|p| (at + p, at + p + 1))
}

/// Decodes the message at the start of `buf` under `limits`.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Decoded, FixError> {
    // BeginString.
    if buf.len() < 2 {
        return if b"8=".starts_with(buf) {
            Ok(Decoded::Incomplete)
        } else {
            Err(FixError::NoBeginString)
        };
    }
    if &buf[..2] != b"8=" {
        return Err(FixError::NoBeginString);
    }
    let Some((version_end, after_version)) = read_value(buf, 2, 9) else {
        return if buf.len() >= 2 + 9 {
            Err(FixError::Version(
                String::from_utf8_lossy(&buf[2..11]).into_owned(),
            ))
        } else {
            Ok(Decoded::Incomplete)
        };
    };
    let begin = BeginString::parse(&buf[2..version_end]).ok_or_else(|| {
        FixError::Version(String::from_utf8_lossy(&buf[2..version_end]).into_owned())
    })?;
    // BodyLength.
    let length_at = after_version;
    match buf.get(length_at..length_at + 2) {
        None => {
            return if b"9=".starts_with(buf.get(length_at..).unwrap_or_default()) {
                Ok(Decoded::Incomplete)
            } else {
                Err(FixError::BodyLength)
            }
        }
        Some(b"9=") => {}
        Some(_) => return Err(FixError::BodyLength),
    }
    let digits_at = length_at + 2;
    let Some((digits_end, body_start)) = read_value(buf, digits_at, 8) else {
        return if buf.len() >= digits_at + 8 {
            Err(FixError::BodyLength)
        } else {
            Ok(Decoded::Incomplete)
        };
    };
    let digits = &buf[digits_at..digits_end];
    if digits.is_empty()
        || digits.len() > 7
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(FixError::BodyLength);
    }
    let body_len = digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    let body_end = body_start + body_len;
    let total = body_end + 7;
    if total > limits.message_bytes_max {
        return Err(FixError::TooLong {
            len: total,
            max: limits.message_bytes_max,
        });
    }
    if buf.len() < total {
        return Ok(Decoded::Incomplete);
    }
    // Trailer and checksum.
    let trailer = &buf[body_end..total];
    if &trailer[..3] != b"10=" || trailer[6] != SOH || !trailer[3..6].iter().all(u8::is_ascii_digit)
    {
        return Err(FixError::Trailer);
    }
    let got = trailer[3..6]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let want = checksum(&buf[..body_end]);
    if got != u16::from(want) {
        return Err(FixError::CheckSum {
            got,
            want,
            used: total,
        });
    }
    // Body fields.
    let mut fields: Vec<Field> = Vec::new();
    let mut at = body_start;
    let mut data: Option<(u32, usize)> = None;
    while at < body_end {
        if fields.len() == limits.fields_max {
            return Err(FixError::TooManyFields(limits.fields_max));
        }
        let (tag, value_at) = match read_tag(&buf[..body_end], at)? {
            Some(found) => found,
            None => return Err(FixError::Field(at)),
        };
        if matches!(tag, TAG_BEGIN_STRING | TAG_BODY_LENGTH | TAG_CHECKSUM) {
            return Err(FixError::Reserved(tag));
        }
        if fields.is_empty() != (tag == TAG_MSG_TYPE) {
            return Err(FixError::MsgTypeFirst);
        }
        let (value_end, next) = match data.take() {
            Some((data_tag, len)) if data_tag == tag => {
                let end = value_at + len;
                if end >= body_end || buf[end] != SOH {
                    return Err(FixError::DataField(tag));
                }
                (end, end + 1)
            }
            Some((data_tag, _)) => return Err(FixError::DataField(data_tag)),
            None if is_data_tag(tag) => return Err(FixError::DataField(tag)),
            None => read_value(&buf[..body_end], value_at, body_end - value_at)
                .ok_or(FixError::Field(at))?,
        };
        if value_end == value_at {
            return Err(FixError::EmptyValue(tag));
        }
        let value = buf[value_at..value_end].to_vec();
        if let Some(data_tag) = data_tag_of(tag) {
            let len = data_length(&value)
                .filter(|len| *len <= body_len)
                .ok_or(FixError::DataField(data_tag))?;
            data = Some((data_tag, len));
        }
        fields.push(Field { tag, value });
        at = next;
    }
    if let Some((data_tag, _)) = data {
        return Err(FixError::DataField(data_tag));
    }
    if fields.is_empty() {
        return Err(FixError::MsgTypeFirst);
    }
    Ok(Decoded::Message(Message { begin, fields }, total))
}

/// A data field's announced length: digits without a leading zero, at least 1.
fn data_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 7 || value[0] == b'0' {
        return None;
    }
    value.iter().try_fold(0usize, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0'))
    })
}

/// Largest body [`encode`] writes (BodyLength has at most seven digits, as [`decode`] reads it).
pub const BODY_BYTES_MAX: usize = 9_999_999;

/// The FIX checksum of `bytes`: their sum modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// Encodes a message of `begin` with `fields` (MsgType first), computing BodyLength and
/// CheckSum. Refuses what [`decode`] refuses: a reserved or invalid tag, an empty value, SOH in
/// a value outside a data field, a data field whose length field does not precede it with its
/// length.
pub fn encode(begin: BeginString, fields: &[Field]) -> Result<Vec<u8>, FixError> {
    let mut body = Vec::with_capacity(fields.iter().map(|f| f.value.len() + 12).sum());
    let mut announced: Option<(u32, usize)> = None;
    for (i, field) in fields.iter().enumerate() {
        let tag = field.tag;
        if tag == 0 || tag > TAG_MAX {
            return Err(FixError::Tag(tag));
        }
        if matches!(tag, TAG_BEGIN_STRING | TAG_BODY_LENGTH | TAG_CHECKSUM) {
            return Err(FixError::Reserved(tag));
        }
        if (i == 0) != (tag == TAG_MSG_TYPE) {
            return Err(FixError::MsgTypeFirst);
        }
        if field.value.is_empty() {
            return Err(FixError::EmptyValue(tag));
        }
        match announced.take() {
            Some((data_tag, len)) if data_tag == tag => {
                if field.value.len() != len {
                    return Err(FixError::DataField(tag));
                }
            }
            Some((data_tag, _)) => return Err(FixError::DataField(data_tag)),
            None if is_data_tag(tag) => return Err(FixError::DataField(tag)),
            None => {
                if field.value.contains(&SOH) {
                    return Err(FixError::Soh(tag));
                }
            }
        }
        if let Some(data_tag) = data_tag_of(tag) {
            let len = data_length(&field.value).ok_or(FixError::DataField(data_tag))?;
            announced = Some((data_tag, len));
        }
        body.extend_from_slice(tag.to_string().as_bytes());
        body.push(b'=');
        body.extend_from_slice(&field.value);
        body.push(SOH);
    }
    if let Some((data_tag, _)) = announced {
        return Err(FixError::DataField(data_tag));
    }
    if fields.is_empty() {
        return Err(FixError::MsgTypeFirst);
    }
    if body.len() > BODY_BYTES_MAX {
        return Err(FixError::TooLong {
            len: body.len(),
            max: BODY_BYTES_MAX,
        });
    }
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(b"8=");
    out.extend_from_slice(begin.as_str().as_bytes());
    out.push(SOH);
    out.extend_from_slice(b"9=");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(SOH);
    out.extend_from_slice(&body);
    let sum = checksum(&out);
    out.extend_from_slice(format!("10={sum:03}").as_bytes());
    out.push(SOH);
    Ok(out)
}

/// Tags whose values never reach a log: Password, NewPassword.
const SECRET_TAGS: &[u32] = &[554, 925, logon::TAG_SESSION_SEED];

impl fmt::Display for Message {
    /// The fields with `|` for SOH, for logs: data fields shown as their length, passwords
    /// redacted, and every byte outside printable ASCII escaped (no control character or escape
    /// sequence from a peer reaches a terminal).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "8={}", self.begin.as_str())?;
        for field in &self.fields {
            if is_data_tag(field.tag) {
                write!(f, "|{}=<{} bytes>", field.tag, field.value.len())?;
            } else if SECRET_TAGS.contains(&field.tag) {
                write!(f, "|{}=<redacted>", field.tag)?;
            } else {
                write!(f, "|{}=", field.tag)?;
                for b in &field.value {
                    if b.is_ascii_graphic() || *b == b' ' {
                        write!(f, "{}", char::from(*b))?;
                    } else {
                        write!(f, "\\x{b:02x}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn wire(text: &str) -> Vec<u8> {
        text.replace('|', "\u{1}").into_bytes()
    }

    fn heartbeat() -> Vec<u8> {
        encode(
            BeginString::Fix44,
            &[
                Field::new(35, "0"),
                Field::new(49, "TRADER"),
                Field::new(56, "BULWARK"),
                Field::new(34, "2"),
                Field::new(52, "20261206-14:00:00.000"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_message_round_trips_with_its_length_and_checksum() {
        let bytes = heartbeat();
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace('\u{1}', "|");
        assert!(text.starts_with("8=FIX.4.4|9=56|35=0|49=TRADER|"), "{text}");
        assert!(text.ends_with(&format!("10={:03}|", checksum(&bytes[..bytes.len() - 7]))));
        let Decoded::Message(message, used) = decode(&bytes, &Limits::SESSION).unwrap() else {
            panic!("whole")
        };
        assert_eq!(used, bytes.len());
        assert_eq!(message.msg_type(), b"0");
        assert_eq!(message.get_str(56), Some("BULWARK"));
        assert_eq!(message.encode().unwrap(), bytes);
        // Every shorter prefix is incomplete, never an error.
        for cut in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut], &Limits::SESSION),
                Ok(Decoded::Incomplete),
                "prefix of {cut}"
            );
        }
        // Two messages back to back: the first is taken, the rest stays.
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        assert!(matches!(
            decode(&two, &Limits::SESSION),
            Ok(Decoded::Message(_, n)) if n == bytes.len()
        ));
    }

    #[test]
    fn framing_errors_are_typed() {
        let good = heartbeat();
        let limits = Limits::SESSION;
        assert_eq!(
            decode(b"GET / HTTP/1.1\r\n", &limits),
            Err(FixError::NoBeginString)
        );
        assert!(matches!(
            decode(&wire("8=FIX.4.2|9=5|35=0|10=000|"), &limits),
            Err(FixError::Version(_))
        ));
        assert_eq!(
            decode(&wire("8=FIX.4.4|35=0|9=5|10=000|"), &limits),
            Err(FixError::BodyLength)
        );
        assert_eq!(
            decode(&wire("8=FIX.4.4|9=05|35=0|10=000|"), &limits),
            Err(FixError::BodyLength)
        );
        // A huge announced body is refused before it arrives.
        assert!(matches!(
            decode(&wire("8=FIX.4.4|9=9999999|"), &Limits::BEFORE_LOGON),
            Err(FixError::TooLong { .. })
        ));
        let mut bad_sum = good.clone();
        let at = bad_sum.len() - 2;
        bad_sum[at] = if bad_sum[at] == b'9' {
            b'0'
        } else {
            bad_sum[at] + 1
        };
        assert!(matches!(
            decode(&bad_sum, &limits),
            Err(FixError::CheckSum { .. })
        ));
        let mut flipped = good.clone();
        flipped[20] ^= 0x20;
        assert!(decode(&flipped, &limits).is_err());
        // Body fields: MsgType first, no reserved tag, no empty value, no leading zero.
        for (body, error) in [
            ("49=A|35=0|", FixError::MsgTypeFirst),
            ("35=0|10=1|", FixError::Reserved(10)),
            ("35=0|49=|", FixError::EmptyValue(49)),
        ] {
            let mut bytes = wire(&format!("8=FIX.4.4|9={}|{body}", body.len()));
            let sum = checksum(&bytes);
            bytes.extend_from_slice(format!("10={sum:03}\u{1}").as_bytes());
            assert_eq!(decode(&bytes, &limits), Err(error), "{body}");
        }
        let body = "35=0|049=A|";
        let mut bytes = wire(&format!("8=FIX.4.4|9={}|{body}", body.len()));
        let sum = checksum(&bytes);
        bytes.extend_from_slice(format!("10={sum:03}\u{1}").as_bytes());
        assert!(matches!(decode(&bytes, &limits), Err(FixError::Field(_))));
        // Too many fields.
        let many: Vec<Field> = std::iter::once(Field::new(35, "0"))
            .chain((0..70).map(|i| Field::new(58, format!("t{i}"))))
            .collect();
        let bytes = encode(BeginString::Fix44, &many).unwrap();
        assert_eq!(
            decode(&bytes, &Limits::BEFORE_LOGON),
            Err(FixError::TooManyFields(64))
        );
    }

    #[test]
    fn logs_show_no_password_and_no_control_byte_and_fixt_is_refused() {
        let message = Message {
            begin: BeginString::Fix44,
            fields: vec![
                Field::new(35, "A"),
                Field::new(553, "trader"),
                Field::new(554, "hunter2"),
                Field::new(58, vec![0x1b, b'[', b'2', b'J', b'\n']),
            ],
        };
        let shown = message.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("554=<redacted>"), "{shown}");
        assert!(!shown.bytes().any(|b| b.is_ascii_control()), "{shown}");
        assert!(shown.contains("\\x1b[2J\\x0a"), "{shown}");
        let mut fixt = wire("8=FIXT.1.1|9=5|35=0|");
        let sum = checksum(&fixt);
        fixt.extend_from_slice(format!("10={sum:03}\u{1}").as_bytes());
        assert!(matches!(
            decode(&fixt, &Limits::SESSION),
            Err(FixError::Version(_))
        ));
        // A data length with a leading zero is refused both ways.
        let zero = vec![
            Field::new(35, "A"),
            Field::new(95, "01"),
            Field::new(96, "x"),
        ];
        assert_eq!(
            encode(BeginString::Fix44, &zero),
            Err(FixError::DataField(96))
        );
    }

    #[test]
    fn data_fields_carry_any_byte_only_after_their_length() {
        let signature = [1u8, 61, 1, 0, 255, 10, 1];
        let fields = vec![
            Field::new(35, "A"),
            Field::new(95, signature.len().to_string()),
            Field::new(96, signature.to_vec()),
            Field::new(98, "0"),
        ];
        let bytes = encode(BeginString::Fix44, &fields).unwrap();
        let Decoded::Message(message, _) = decode(&bytes, &Limits::SESSION).unwrap() else {
            panic!("whole")
        };
        assert_eq!(message.get(96), Some(&signature[..]));
        assert_eq!(message.get_str(98), Some("0"));
        // Wrong length, missing length, SOH outside a data field: refused both ways.
        let mut wrong = fields.clone();
        wrong[1] = Field::new(95, "3");
        assert_eq!(
            encode(BeginString::Fix44, &wrong),
            Err(FixError::DataField(96))
        );
        let alone = vec![Field::new(35, "A"), Field::new(96, "x")];
        assert_eq!(
            encode(BeginString::Fix44, &alone),
            Err(FixError::DataField(96))
        );
        let soh = vec![Field::new(35, "A"), Field::new(58, vec![b'a', SOH])];
        assert_eq!(encode(BeginString::Fix44, &soh), Err(FixError::Soh(58)));
        let body = "35=A|95=9|96=ab|";
        let mut bytes = wire(&format!("8=FIX.4.4|9={}|{body}", body.len()));
        let sum = checksum(&bytes);
        bytes.extend_from_slice(format!("10={sum:03}\u{1}").as_bytes());
        assert_eq!(
            decode(&bytes, &Limits::SESSION),
            Err(FixError::DataField(96))
        );
    }
}
