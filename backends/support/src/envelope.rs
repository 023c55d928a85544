//! The artifact envelope every backend shares: a protobuf message whose field 1 is a [`Header`]
//! (magic bytes, format version, target name, source hash, chips, timesteps, and a checksum of
//! everything after the header), written and checked in one place. A backend declares its
//! [`Envelope`] (magic, version, name) and its artifact message implements [`Enveloped`]
//! ([`crate::artifact_codec!`]); encoding is prost's (deterministic: fields in tag order, no
//! maps). Decoding tells a foreign file from a newer or damaged artifact before the backend
//! validates the body: a flipped bit or a truncation anywhere after the header changes the
//! checksum, so it is always a corrupt artifact, never a different program.

/// Identification of an artifact: field 1 of every backend's artifact message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    /// The backend's magic bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub magic: Vec<u8>,
    /// Format version at writing time.
    #[prost(uint32, tag = "2")]
    pub format_version: u32,
    /// Target name.
    #[prost(string, tag = "3")]
    pub target: String,
    /// Hash of the source model, given by the compiler (for dependency tracking).
    #[prost(fixed64, tag = "4")]
    pub source_hash: u64,
    /// Chips the artifact uses (0, not written, for single-device targets).
    #[prost(uint32, tag = "5")]
    pub chips: u32,
    /// Timesteps a run takes unless told otherwise (0, not written, where the artifact derives
    /// them).
    #[prost(uint32, tag = "6")]
    pub timesteps: u32,
    /// FNV-1a 64 of the encoded bytes after the header field, written by [`Envelope::encode`]
    /// and checked (then cleared) by [`Envelope::decode`]; 0 in memory.
    #[prost(fixed64, tag = "7")]
    pub payload_checksum: u64,
}

/// Why bytes are not a usable artifact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The bytes do not start with this target's header.
    #[error("not an nmc {target} artifact (bad magic)")]
    NotAnArtifact {
        /// The target whose artifact was expected.
        target: &'static str,
    },
    /// The bytes are no nmc artifact of any target known here.
    #[error("not an nmc artifact (unknown magic bytes)")]
    Unrecognised,
    /// Written by another format version.
    #[error(
        "artifact format version {found} is not supported (this build reads version {supported})"
    )]
    Version {
        /// Version in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// An nmc artifact for another chip.
    #[error("artifact is for target `{found}`, not {expected}")]
    WrongTarget {
        /// Target in the header.
        found: String,
        /// The target that read it.
        expected: &'static str,
    },
    /// Truncated, malformed or inconsistent.
    #[error("corrupt artifact: {0}")]
    Corrupt(String),
}

/// A corrupt-artifact error (the one constructor validation code uses).
pub fn corrupt(message: impl Into<String>) -> ArtifactError {
    ArtifactError::Corrupt(message.into())
}

/// An artifact message whose field 1 is the [`Header`].
pub trait Enveloped: prost::Message + Default {
    /// The header, if present.
    fn header(&self) -> Option<&Header>;
    /// The header, mutably.
    fn header_mut(&mut self) -> Option<&mut Header>;
}

/// One backend's envelope: what its header must say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// First bytes of the header's magic field.
    pub magic: &'static [u8; 8],
    /// The format version this build writes and reads.
    pub version: u32,
    /// Target name stored in the header.
    pub target: &'static str,
}

impl Envelope {
    /// A header for a new artifact (no chips or timesteps recorded; set them where they apply).
    pub fn header(&self, source_hash: u64) -> Header {
        Header {
            magic: self.magic.to_vec(),
            format_version: self.version,
            target: self.target.into(),
            source_hash,
            ..Default::default()
        }
    }

    /// The artifact's bytes (deterministic for equal artifacts): the header field with the
    /// checksum of everything after it, then the rest of the message as prost writes it.
    pub fn encode<M: Enveloped>(&self, a: &M) -> Vec<u8> {
        let full = a.encode_to_vec();
        let Some(h) = a.header() else {
            return full;
        };
        // prost writes fields in tag order, so the header (field 1) comes first.
        let payload = &full[sniff_header(&full).map_or(0, |(_, len)| len)..];
        let mut h = h.clone();
        h.payload_checksum = checksum(payload);
        let mut out = Vec::with_capacity(full.len() + 9);
        prost::encoding::message::encode(1, &h, &mut out);
        out.extend_from_slice(payload);
        out
    }

    /// Whether `bytes` start with this backend's header (of any version), i.e. whether a failure
    /// to decode them should be reported as a damaged artifact rather than a foreign file.
    pub fn is_artifact(&self, bytes: &[u8]) -> bool {
        sniff_header(bytes).is_some_and(|(h, _)| h.magic == self.magic)
    }

    /// Parses the message after checking its header and checksum; the caller validates the
    /// body. The header is read first, so a newer version is reported as such even when its body
    /// does not parse, and a damaged artifact is told from arbitrary bytes.
    pub fn decode<M: Enveloped>(&self, bytes: &[u8]) -> Result<M, ArtifactError> {
        let Some((h, len)) = sniff_header(bytes) else {
            return Err(self.not_ours());
        };
        self.check(&h)?;
        let sum = checksum(&bytes[len..]);
        if sum != h.payload_checksum {
            return Err(corrupt(format!(
                "checksum mismatch (stored {:#018x}, computed {sum:#018x}): the file is damaged or truncated",
                h.payload_checksum
            )));
        }
        let mut a = M::decode(bytes).map_err(|e| corrupt(format!("malformed protobuf: {e}")))?;
        match a.header_mut() {
            Some(h) => h.payload_checksum = 0,
            None => return Err(self.not_ours()),
        }
        Ok(a)
    }

    /// The header of an artifact built in memory or decoded, checked against this envelope (what
    /// every emulator does before it trusts an artifact).
    pub fn checked<'a>(&self, h: Option<&'a Header>) -> Result<&'a Header, ArtifactError> {
        let h = h.ok_or_else(|| self.not_ours())?;
        self.check(h)?;
        Ok(h)
    }

    /// Checks a header against this envelope.
    pub fn check(&self, h: &Header) -> Result<(), ArtifactError> {
        if h.magic != self.magic {
            return Err(self.not_ours());
        }
        if h.format_version != self.version {
            return Err(ArtifactError::Version {
                found: h.format_version,
                supported: self.version,
            });
        }
        if h.target != self.target {
            return Err(ArtifactError::WrongTarget {
                found: h.target.clone(),
                expected: self.target,
            });
        }
        Ok(())
    }

    fn not_ours(&self) -> ArtifactError {
        ArtifactError::NotAnArtifact {
            target: self.target,
        }
    }
}

/// Declares a backend's artifact codec in one line: `impl Enveloped` for the artifact message
/// (whose field 1 is `header: Option<Header>`) and the crate's `encode`, `is_artifact` and
/// `decode` (the envelope's checks, then the crate's own `validate`, whose success value is
/// dropped).
#[macro_export]
macro_rules! artifact_codec {
    ($artifact:ty, $envelope:expr, $validate:expr) => {
        impl $crate::Enveloped for $artifact {
            fn header(&self) -> Option<&$crate::Header> {
                self.header.as_ref()
            }
            fn header_mut(&mut self) -> Option<&mut $crate::Header> {
                self.header.as_mut()
            }
        }

        /// The artifact's bytes (deterministic: prost writes fields in tag order, and artifacts
        /// have no maps).
        pub fn encode(a: &$artifact) -> Vec<u8> {
            $envelope.encode(a)
        }

        /// Whether `bytes` start with this target's artifact header (of any version), i.e.
        /// whether a failure to decode them is a damaged artifact rather than a foreign file.
        pub fn is_artifact(bytes: &[u8]) -> bool {
            $envelope.is_artifact(bytes)
        }

        /// Parses an artifact, checks its header and validates its body.
        pub fn decode(bytes: &[u8]) -> Result<$artifact, $crate::ArtifactError> {
            let a: $artifact = $envelope.decode(bytes)?;
            let validate = $validate;
            validate(&a)?;
            Ok(a)
        }
    };
}

/// The checksum of an artifact's payload (FNV-1a 64).
fn checksum(payload: &[u8]) -> u64 {
    nmc_ir::hash_bytes(payload)
}

/// The header and the length of its field, if `bytes` start with a complete header field
/// (field 1, length-delimited).
fn sniff_header(bytes: &[u8]) -> Option<(Header, usize)> {
    if *bytes.first()? != 0x0a {
        return None;
    }
    let mut rest = &bytes[1..];
    let len = usize::try_from(prost::encoding::decode_varint(&mut rest).ok()?).ok()?;
    let body = rest.get(..len)?;
    let end = bytes.len() - rest.len() + len;
    Some((<Header as prost::Message>::decode(body).ok()?, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: Envelope = Envelope {
        magic: b"NMCTSART",
        version: 1,
        target: "test",
    };

    #[derive(Clone, PartialEq, prost::Message)]
    struct Art {
        #[prost(message, optional, tag = "1")]
        header: Option<Header>,
        #[prost(uint32, repeated, tag = "2")]
        body: Vec<u32>,
    }

    impl Enveloped for Art {
        fn header(&self) -> Option<&Header> {
            self.header.as_ref()
        }
        fn header_mut(&mut self) -> Option<&mut Header> {
            self.header.as_mut()
        }
    }

    fn art() -> Art {
        Art {
            header: Some(ENV.header(0x1234_5678_9abc_def0)),
            body: vec![1, 2, 3],
        }
    }

    #[test]
    fn header_checks() {
        let a = art();
        let bytes = ENV.encode(&a);
        assert_eq!(ENV.decode::<Art>(&bytes), Ok(a.clone()));
        assert!(ENV.is_artifact(&bytes));
        assert!(!ENV.is_artifact(b"\x0a\x02hi"));
        let not = Err(ArtifactError::NotAnArtifact { target: "test" });
        assert_eq!(ENV.decode::<Art>(b"GIF89a...."), not);
        assert_eq!(ENV.decode::<Art>(&[]), not);
        let mut b = a.clone();
        b.header.as_mut().unwrap().format_version = 2;
        assert_eq!(
            ENV.decode::<Art>(&ENV.encode(&b)),
            Err(ArtifactError::Version {
                found: 2,
                supported: 1
            })
        );
        let mut b = a.clone();
        b.header.as_mut().unwrap().target = "speck".into();
        assert_eq!(
            ENV.decode::<Art>(&ENV.encode(&b)).unwrap_err().to_string(),
            "artifact is for target `speck`, not test"
        );
        let mut b = a.clone();
        b.header.as_mut().unwrap().magic = b"NMCTSARX".to_vec();
        assert_eq!(ENV.decode::<Art>(&ENV.encode(&b)), not);
        // A truncated body whose header still reads is a damaged artifact, not a foreign file.
        assert!(matches!(
            ENV.decode::<Art>(&bytes[..bytes.len() - 1]),
            Err(ArtifactError::Corrupt(_))
        ));
    }

    #[test]
    fn every_flipped_bit_and_truncation_after_the_header_is_corrupt() {
        let bytes = ENV.encode(&art());
        let header = sniff_header(&bytes).unwrap().1;
        for i in header..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    matches!(ENV.decode::<Art>(&b), Err(ArtifactError::Corrupt(_))),
                    "byte {i} bit {bit}"
                );
            }
        }
        for n in header..bytes.len() {
            assert!(matches!(
                ENV.decode::<Art>(&bytes[..n]),
                Err(ArtifactError::Corrupt(_))
            ));
        }
        // A flipped bit inside the header is caught by the header's own checks or the checksum,
        // except in the source hash, which is informational.
        for i in 0..header {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(a) = ENV.decode::<Art>(&b) {
                    assert_eq!(a.body, art().body, "byte {i} bit {bit}");
                }
            }
        }
        // Encoding is stable through a decode (the checksum is not kept in memory).
        assert_eq!(ENV.encode(&ENV.decode::<Art>(&bytes).unwrap()), bytes);
    }
}
