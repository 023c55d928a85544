//! The artifact envelope every backend shares: a protobuf message whose field 1 is a [`Header`]
//! (magic bytes, format version, target name, source hash, chips), written and checked in one
//! place. A backend declares its [`Envelope`] (magic, version, name) and its artifact message
//! implements [`Enveloped`]; encoding is prost's (deterministic: fields in tag order, no maps),
//! decoding tells a foreign file from a damaged or newer artifact before the backend validates
//! the body.

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
    /// A header for a new artifact.
    pub fn header(&self, source_hash: u64, chips: u32) -> Header {
        Header {
            magic: self.magic.to_vec(),
            format_version: self.version,
            target: self.target.into(),
            source_hash,
            chips,
        }
    }

    /// The artifact's bytes (deterministic for equal artifacts).
    pub fn encode<M: Enveloped>(&self, a: &M) -> Vec<u8> {
        a.encode_to_vec()
    }

    /// Whether `bytes` start with this backend's header (of any version), i.e. whether a failure
    /// to decode them should be reported as a damaged artifact rather than a foreign file.
    pub fn is_artifact(&self, bytes: &[u8]) -> bool {
        sniff_header(bytes).is_some_and(|h| h.magic == self.magic)
    }

    /// Parses the message and checks its header; the caller validates the body.
    pub fn decode<M: Enveloped>(&self, bytes: &[u8]) -> Result<M, ArtifactError> {
        let a = match M::decode(bytes) {
            Ok(a) => a,
            Err(e) => {
                // Tell a damaged artifact (whose header still reads) from arbitrary bytes, and
                // report a version mismatch even when the newer body does not parse.
                let Some(h) = sniff_header(bytes) else {
                    return Err(self.not_ours());
                };
                self.check(&h)?;
                return Err(corrupt(format!("malformed or truncated protobuf: {e}")));
            }
        };
        let Some(h) = a.header() else {
            return Err(self.not_ours());
        };
        self.check(h)?;
        Ok(a)
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

/// The header, if `bytes` start with a complete header field (field 1, length-delimited).
fn sniff_header(bytes: &[u8]) -> Option<Header> {
    if *bytes.first()? != 0x0a {
        return None;
    }
    let mut rest = &bytes[1..];
    let len = prost::encoding::decode_varint(&mut rest).ok()?;
    let body = rest.get(..usize::try_from(len).ok()?)?;
    <Header as prost::Message>::decode(body).ok()
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
    }

    fn art() -> Art {
        Art {
            header: Some(ENV.header(0x1234_5678_9abc_def0, 0)),
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
}
