//! `ready = { fd = N }`: s6's notification fd. The service gets the write end of a pipe as fd
//! N and writes a newline to it once it is ready; this reads the other end.
//!
//! One task per run, woken by the pipe: it ends at the newline (one note), or at end of file
//! (every holder of the write end is gone: the run ended, or the service closed it unready).

use std::os::fd::OwnedFd;

use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::{Note, NoteKind};

pub(super) async fn watch(read: OwnedFd, pgid: u32, notes: mpsc::Sender<Note>) {
    let Ok(pipe) = pipe::Receiver::from_owned_fd(read) else {
        return;
    };
    let mut buf = [0u8; 512];
    loop {
        if pipe.readable().await.is_err() {
            return;
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
        let task = tokio::spawn(watch(r, 42, tx.clone()));
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
        let task = tokio::spawn(watch(r, 43, tx));
        std::fs::File::from(w).write_all(b"no newline").unwrap();
        task.await.unwrap();
        assert!(rx.try_recv().is_err());
    }
}
