//! fwctl's errors, each printed as one line: `fwctl: <Display>`.

use std::{fmt, io};

/// `ENOENT`, as the kernel puts it in `nlmsgerr.error` (negated).
pub const ENOENT: i32 = 2;
/// `EPERM`.
pub const EPERM: i32 = 1;
/// `EACCES`.
pub const EACCES: i32 = 13;
/// `EAGAIN`: a ruleset replace whose generation is no longer current.
pub const EAGAIN: i32 = 11;

/// Everything that can go wrong talking to rfw.
#[derive(Debug)]
pub enum Error {
    /// The `rfw` generic netlink family does not exist: the module is not loaded.
    NotLoaded,
    /// The kernel answered `EPERM` or `EACCES` without saying why: the
    /// caller lacks `CAP_NET_ADMIN` (genetlink's `GENL_UNS_ADMIN_PERM`
    /// check sends no extended ACK). An `EPERM` with a message (a limit
    /// only the host may raise) is a [`Error::Kernel`].
    PermissionDenied,
    /// The kernel answered a request with another error.
    Kernel {
        /// What was being done.
        what: String,
        /// Positive errno.
        errno: i32,
        /// The extended ACK message (`NLMSGERR_ATTR_MSG`), if the kernel sent one.
        extack: Option<String>,
    },
    /// [`rfw_abi::Cmd::CtDelete`] found no connection with the tuple given
    /// (`ENOENT`).
    NoSuchConnection {
        /// The extended ACK message, if the kernel sent one.
        extack: Option<String>,
    },
    /// A system call failed.
    Io {
        /// What was being done.
        what: String,
        /// The error from the system call.
        source: io::Error,
    },
    /// A ruleset command that cannot be done as asked (a bad rule, an
    /// unknown chain or handle, a file that does not parse...): one line,
    /// naming the table and what is wrong.
    Rules(String),
    /// The kernel's answer did not make sense.
    Protocol {
        /// What was being done.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl Error {
    /// Maps an errno from an `NLMSG_ERROR` or `NLMSG_DONE`.
    pub fn from_kernel(what: &str, errno: i32, extack: Option<String>) -> Self {
        match errno {
            EPERM | EACCES if extack.is_none() => Error::PermissionDenied,
            _ => Error::Kernel {
                what: what.to_owned(),
                errno,
                extack,
            },
        }
    }

    /// A failed system call.
    pub fn io(what: &str, source: io::Error) -> Self {
        Error::Io {
            what: what.to_owned(),
            source,
        }
    }

    /// A malformed or unexpected answer.
    pub fn protocol(what: &str, detail: impl fmt::Display) -> Self {
        Error::Protocol {
            what: what.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// The C library's text for an errno, without std's " (os error N)" suffix.
pub fn errno_text(errno: i32) -> String {
    let full = io::Error::from_raw_os_error(errno).to_string();
    match full.strip_suffix(&format!(" (os error {errno})")) {
        Some(text) => text.to_owned(),
        None => full,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotLoaded => write!(
                f,
                "rfw is not loaded (no generic netlink family \"{}\"); try: modprobe rfw",
                rfw_abi::FAMILY_NAME
            ),
            Error::PermissionDenied => {
                f.write_str("permission denied: rfw needs CAP_NET_ADMIN in this network namespace")
            }
            Error::Kernel {
                what,
                errno,
                extack: Some(msg),
            } => write!(f, "{what}: {msg} ({})", errno_text(*errno)),
            Error::Kernel {
                what,
                errno,
                extack: None,
            } => write!(f, "{what}: {}", errno_text(*errno)),
            // The kernel's own extack says the same: print it once.
            Error::NoSuchConnection { extack: Some(msg) }
                if !msg.eq_ignore_ascii_case("no such connection") =>
            {
                write!(f, "no such connection: {msg}")
            }
            Error::NoSuchConnection { .. } => f.write_str("no such connection"),
            Error::Io { what, source } => match source.raw_os_error() {
                Some(errno) => write!(f, "{what}: {}", errno_text(errno)),
                None => write!(f, "{what}: {source}"),
            },
            Error::Rules(message) => f.write_str(message),
            Error::Protocol { what, detail } => write!(f, "{what}: {detail}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_drops_the_os_error_suffix() {
        assert_eq!(errno_text(22), "Invalid argument");
    }

    #[test]
    fn no_such_connection_shows_an_extack_that_adds_something() {
        let e = |extack: Option<&str>| {
            Error::NoSuchConnection {
                extack: extack.map(str::to_owned),
            }
            .to_string()
        };
        assert_eq!(e(None), "no such connection");
        assert_eq!(e(Some("no such connection")), "no such connection");
        assert_eq!(
            e(Some("tracking is off in this netns")),
            "no such connection: tracking is off in this netns"
        );
    }

    #[test]
    fn eperm_with_a_reason_shows_it() {
        assert_eq!(
            Error::from_kernel("setting", EPERM, None).to_string(),
            "permission denied: rfw needs CAP_NET_ADMIN in this network namespace"
        );
        assert_eq!(
            Error::from_kernel("setting", EPERM, Some("only the host may".to_owned())).to_string(),
            "setting: only the host may (Operation not permitted)"
        );
    }

    #[test]
    fn every_error_is_one_line() {
        let errors = [
            Error::NotLoaded,
            Error::PermissionDenied,
            Error::from_kernel("x", 22, Some("bad\nthing".replace('\n', " "))),
            Error::from_kernel("x", EPERM, Some("no".to_owned())),
            Error::io("x", io::Error::from_raw_os_error(97)),
            Error::protocol("x", "y"),
            Error::NoSuchConnection { extack: None },
            Error::Rules("nat: rule 1 in chain INPUT: x".to_owned()),
        ];
        for e in errors {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
