//! Who may attach: the credential policy the daemon checks with SO_PEERCRED.

use utipc_shm_api::attach_socket::PeerCred;

/// Users and groups allowed to attach. Root and the daemon's own user always are; the
/// configuration (`[access] uids = [...]`, `gids = [...]`) adds more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Extra user ids.
    pub uids: Vec<u32>,
    /// Extra group ids (the peer's primary group, as SO_PEERCRED reports it).
    pub gids: Vec<u32>,
}

impl AccessPolicy {
    /// Checks a peer; `Err` is the reason given to the client and logged.
    ///
    /// # Errors
    ///
    /// A text naming the refused uid/gid and how to allow it.
    pub fn check(&self, cred: &PeerCred) -> Result<(), String> {
        // SAFETY: geteuid has no preconditions.
        let own = unsafe { libc::geteuid() };
        if cred.uid == 0
            || cred.uid == own
            || self.uids.contains(&cred.uid)
            || self.gids.contains(&cred.gid)
        {
            return Ok(());
        }
        Err(format!(
            "uid {} (gid {}, pid {}) is not allowed to attach: add it to [access] uids or gids \
             in utipcd's config",
            cred.uid, cred.gid, cred.pid
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_self_and_listed_ids_pass() {
        // SAFETY: geteuid has no preconditions.
        let own = unsafe { libc::geteuid() };
        let p = AccessPolicy {
            uids: vec![4242],
            gids: vec![777],
        };
        let cred = |uid, gid| PeerCred { pid: 1, uid, gid };
        assert!(p.check(&cred(0, 0)).is_ok());
        assert!(p.check(&cred(own, 5)).is_ok());
        assert!(p.check(&cred(4242, 5)).is_ok());
        assert!(p.check(&cred(4243, 777)).is_ok());
        if own != 4243 {
            let e = p.check(&cred(4243, 5)).expect_err("refused");
            assert!(e.contains("uid 4243"), "{e}");
        }
    }
}
