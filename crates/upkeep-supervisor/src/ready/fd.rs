//! `ready = { fd = N }`: s6's notification fd. The service gets the write end of a pipe as fd
//! N and writes a newline to it once it is ready; this reads the other end.
//!
//! One task per run, woken by the pipe: it ends at the newline (one note), or at end of file
//! (every holder of the write end is gone: the run ended, or the service closed it unready),
//! or when asked for the read end back (`upkeep upgrade` hands it to the next image, issue
//! 18: a run still starting could never say it was ready after an upgrade). It is asked
//! between two reads, never in the middle of one: a newline read is always told.

use std::os::fd::OwnedFd;

use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use super::{Note, NoteKind};

/// Asks the watch for its read end: answered with it, or dropped if the watch has ended.
pub(crate) type GiveBack = oneshot::Sender<oneshot::Sender<OwnedFd>>;

pub(super) async fn watch(
    read: OwnedFd,
    pgid: u32,
    notes: mpsc::Sender<Note>,
    mut give_back: oneshot::Receiver<oneshot::Sender<OwnedFd>>,
) {
    let Ok(pipe) = pipe::Receiver::from_owned_fd(read) else {
        return;
    };
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            biased;
            asked = &mut give_back => {
                if let (Ok(answer), Ok(fd)) = (asked, pipe.into_blocking_fd()) {
                    let _ = answer.send(fd);
                }
                return;
            }
            readable = pipe.readable() => if readable.is_err() {
                return;
            },
        }
        match pipe.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) if buf[..n].contains(&b'\n') => {
                let kind = NoteKind::Ready("fd");
                let _ = notes.send(Note { pgid, kind }).await;
                return;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn a_newline_is_ready_and_an_unready_close_is_nothing() {
        let (tx, mut rx) = mpsc::channel(4);
        let (r, w) = nix::unistd::pipe().unwrap();
        let (_keep, give_back) = oneshot::channel();
        let task = tokio::spawn(watch(r, 42, tx.clone(), give_back));
        let mut w = std::fs::File::from(w);
        w.write_all(b"almost").unwrap();
        w.write_all(b" there\n").unwrap();
        let note = rx.recv().await.unwrap();
        assert_eq!(
            note,
            Note {
                pgid: 42,
                kind: NoteKind::Ready("fd")
            }
        );
        task.await.unwrap();
        // Closed without a newline: the task ends and says nothing.
        let (r, w) = nix::unistd::pipe().unwrap();
        let (_keep, give_back) = oneshot::channel();
        let task = tokio::spawn(watch(r, 43, tx.clone(), give_back));
        std::fs::File::from(w).write_all(b"no newline").unwrap();
        task.await.unwrap();
        assert!(rx.try_recv().is_err());
    }

    /// Issue 18: asked for it, the watch gives its read end back, and what is written after
    /// is there to read.
    #[tokio::test]
    async fn the_read_end_is_given_back_when_asked() {
        let (tx, mut rx) = mpsc::channel(4);
        let (r, w) = nix::unistd::pipe().unwrap();
        let (ask, give_back) = oneshot::channel();
        let task = tokio::spawn(watch(r, 44, tx, give_back));
        let (answer, answered) = oneshot::channel();
        ask.send(answer).unwrap();
        let read = answered.await.unwrap();
        task.await.unwrap();
        std::fs::File::from(w).write_all(b"\n").unwrap();
        let mut got = [0u8; 1];
        let n = nix::unistd::read(&read, &mut got).unwrap();
        assert_eq!(&got[..n], b"\n");
        assert!(rx.try_recv().is_err());
    }
}
