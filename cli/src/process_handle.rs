//! A live process pinned by a pidfd, so a signal reaches the process that
//! was checked and never one that took its pid afterwards. A pid checked
//! and signalled later can be reused in between: the grace period of
//! `cluster down` alone is ten seconds, and with `pid_max` at 32768 a busy
//! machine wraps around in minutes. On Linux (5.3+) the handle holds a
//! pidfd opened before the check; elsewhere, or on older kernels, it falls
//! back to the bare pid.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::local::{pid_alive, send_signal};

/// How long `scale`, `upgrade` and `node restart` give a node to exit after
/// SIGTERM before it is killed (`cluster down` takes --grace).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ProcessHandle {
    pid: u32,
    #[cfg(target_os = "linux")]
    fd: Option<std::os::fd::OwnedFd>,
}

impl PartialEq for ProcessHandle {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid
    }
}

impl Eq for ProcessHandle {}

impl ProcessHandle {
    /// Pins `pid`; `None` when no such process exists.
    pub fn open(pid: u32) -> Option<ProcessHandle> {
        let handle = ProcessHandle {
            pid,
            #[cfg(target_os = "linux")]
            fd: pidfd::open(pid).ok()?,
        };
        handle.alive().then_some(handle)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the pinned process still runs (a zombie counts as gone).
    pub fn alive(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            return !pidfd::ended(fd);
        }
        pid_alive(self.pid)
    }

    /// Sends `sig` to the pinned process; a process already gone is fine.
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            return pidfd::signal(fd, sig)
                .map_err(|e| anyhow::anyhow!("cannot send {sig} to pid {}: {e}", self.pid));
        }
        send_signal(self.pid, sig)
    }

    /// Blocks until the process has ended or `limit` passes; whether it
    /// ended. For a process caught mid-exit, which holds its sockets for a
    /// few milliseconds more.
    pub fn wait_ended(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// SIGTERM, then SIGKILL if the process still runs after `grace`.
    pub async fn stop(&self, grace: Duration) -> anyhow::Result<()> {
        self.signal(Signal::SIGTERM)?;
        if !wait_gone(std::slice::from_ref(self), grace)
            .await
            .is_empty()
        {
            self.signal(Signal::SIGKILL)?;
            wait_gone(std::slice::from_ref(self), Duration::from_secs(2)).await;
        }
        Ok(())
    }
}

/// Waits until every process is gone or `limit` passes; returns the pids of
/// those still alive.
pub async fn wait_gone(procs: &[ProcessHandle], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let alive: Vec<u32> = procs
            .iter()
            .filter(|p| p.alive())
            .map(ProcessHandle::pid)
            .collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(target_os = "linux")]
mod pidfd {
    use std::os::fd::OwnedFd;

    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags};

    /// `Ok(None)`: the kernel has no pidfds (before 5.3, or a seccomp
    /// filter refusing them): the handle falls back to the pid.
    pub fn open(pid: u32) -> Result<Option<OwnedFd>, Errno> {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or(Errno::SRCH)?;
        match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOSYS | Errno::PERM) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A pidfd turns readable once its process has ended (a zombie too).
    pub fn ended(fd: &OwnedFd) -> bool {
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&zero)) {
            Ok(n) => n > 0,
            Err(_) => false,
        }
    }

    pub fn signal(fd: &OwnedFd, sig: nix::sys::signal::Signal) -> Result<(), Errno> {
        let sig = rustix::process::Signal::from_named_raw(sig as i32).ok_or(Errno::INVAL)?;
        match pidfd_send_signal(fd, sig) {
            Err(Errno::SRCH) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    /// A new `sleep` under `pid`, through `ns_last_pid` (root only; other
    /// processes forking at the same moment can take the pid, so it retries).
    fn sleeper_with_pid(pid: u32) -> Option<Child> {
        for _ in 0..50 {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
            let mut child = sleeper();
            if child.id() == pid {
                return Some(child);
            }
            child.kill().unwrap();
            child.wait().unwrap();
        }
        None
    }

    #[tokio::test]
    async fn stop_ends_a_process_and_gone_ones_are_gone() {
        let mut child = sleeper();
        let handle = ProcessHandle::open(child.id()).unwrap();
        assert!(handle.alive());
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        handle.stop(Duration::from_secs(5)).await.unwrap();
        assert!(!reaper.join().unwrap().success(), "ended by SIGTERM");
        assert!(!handle.alive());
        assert_eq!(ProcessHandle::open(handle.pid()), None);
    }

    #[test]
    fn a_process_that_took_over_the_pid_is_never_signalled() {
        let mut first = sleeper();
        let pid = first.id();
        let handle = ProcessHandle::open(pid).unwrap();
        first.kill().unwrap();
        first.wait().unwrap();
        let Some(mut second) = sleeper_with_pid(pid) else {
            eprintln!("skipped: cannot place a process under pid {pid} (needs root)");
            return;
        };
        assert!(!handle.alive(), "the handle's process is gone");
        handle.signal(Signal::SIGKILL).unwrap();
        // Proving that nothing happens takes a wait: a SIGKILLed process
        // is gone within milliseconds, so a second is ample.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mut survived = true;
        while survived && std::time::Instant::now() < deadline {
            survived = second.try_wait().unwrap().is_none();
            std::thread::yield_now();
        }
        second.kill().unwrap();
        second.wait().unwrap();
        assert!(survived, "pid {pid} was reused and its new process killed");
    }
}
