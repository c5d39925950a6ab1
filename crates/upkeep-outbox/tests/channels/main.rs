//! The channels against real receivers on loopback: a Python HTTP server that plays each
//! vendor and checks signatures with Python's own hmac (`tests/receiver.py`), and aiosmtpd
//! (`tests/smtp_sink.py`). Nothing inside the crate is replaced.
//!
//! - `conformance.rs`: every kind, the same checks (every field arrives; 500, 400, refused
//!   and 429 sort into retry or permanent).
//! - `vendors.rs`: signatures, vendor rate limits and each kind's own rules.
//! - `smtp.rs`: headers, Message-ID, parts, encodings, STARTTLS, TLS and AUTH.
//! - `support.rs`: starting the receivers, building channels, the sample notices.

mod conformance;
mod smtp;
mod support;
mod vendors;
