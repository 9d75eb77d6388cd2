//! The ceremony's wire messages: one tag byte, then the primitive's codec payload.

use super::*;

/// A message on the wire: one tag byte ([`Kind`]), then the primitive's codec payload.
// One message lives at a time, for the length of a `receive` call, so its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Message {
    Dealing {
        commitment: DealerPubMsg<MinSig>,
        share: DealerPrivMsg,
    },
    Ack(PlayerAck<PublicKey>),
    Log(SignedDealerLog<MinSig, PublicKey>),
    Echo(Summary),
}

impl Message {
    pub(super) fn kind(&self) -> Kind {
        match self {
            Self::Dealing { .. } => Kind::Dealing,
            Self::Ack(_) => Kind::Ack,
            Self::Log(_) => Kind::Log,
            Self::Echo(_) => Kind::Echo,
        }
    }

    pub(super) fn to(self, to: To) -> Outgoing {
        Outgoing {
            to,
            bytes: self.encode().to_vec(),
        }
    }

    /// The largest well-formed message for `n` participants; logs are the largest kind.
    pub(super) fn max_size(n: NonZeroU32) -> usize {
        1 + SignedDealerLog::<MinSig, PublicKey>::max_encode_size(n)
            .max(DealerPubMsg::<MinSig>::max_encode_size(n) + DealerPrivMsg::SIZE)
    }
}

impl EncodeSize for Message {
    fn encode_size(&self) -> usize {
        1 + match self {
            Self::Dealing { commitment, share } => commitment.encode_size() + share.encode_size(),
            Self::Ack(ack) => ack.encode_size(),
            Self::Log(log) => log.encode_size(),
            Self::Echo(digest) => digest.encode_size(),
        }
    }
}

impl Write for Message {
    fn write(&self, buf: &mut impl BufMut) {
        (self.kind() as u8).write(buf);
        match self {
            Self::Dealing { commitment, share } => {
                commitment.write(buf);
                share.write(buf);
            }
            Self::Ack(ack) => ack.write(buf),
            Self::Log(log) => log.write(buf),
            Self::Echo(digest) => digest.write(buf),
        }
    }
}

impl Read for Message {
    /// The committee size, bounding every length the payload declares.
    type Cfg = NonZeroU32;

    fn read_cfg(buf: &mut impl Buf, n: &NonZeroU32) -> Result<Self, CodecError> {
        let tag = u8::read(buf)?;
        Ok(match tag {
            0 => Self::Dealing {
                commitment: DealerPubMsg::read_cfg(buf, n)?,
                share: DealerPrivMsg::read(buf)?,
            },
            1 => Self::Ack(PlayerAck::read(buf)?),
            2 => Self::Log(SignedDealerLog::read_cfg(buf, n)?),
            3 => Self::Echo(Summary::read(buf)?),
            other => return Err(CodecError::InvalidEnum(other)),
        })
    }
}
