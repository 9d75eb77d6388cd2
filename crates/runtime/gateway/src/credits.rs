//! Credits by class, in the manner of Deribit: every request a logged-on session makes is
//! one of four classes, checked against its own GCRA limiter (`governor`) before anything is
//! spent on it. A refusal is immediate, never queued.
//!
//! - cancels (single and mass) are never refused;
//! - modifies have their own, larger quota, so a trader can always move a resting order;
//! - new orders are limited per session and, across all of an account's sessions, per account;
//! - queries (order status) have the smallest quota: they are refused first.
//!
//! Before logon the gateway spends per source address and globally: logon signatures are
//! checked, and TLS handshakes begun, only within both budgets of each (the per-address one
//! first, so one address cannot spend the global budget).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Limits;

/// What a request is, for its credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// OrderCancelRequest, OrderMassCancelRequest: never refused.
    Cancel,
    /// OrderCancelReplaceRequest.
    Modify,
    /// NewOrderSingle.
    Order,
    /// OrderStatusRequest.
    Query,
}

fn quota(per_s: u32, burst: u32) -> Quota {
    let per_s = NonZeroU32::new(per_s).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_s).allow_burst(burst)
}

/// The gateway-wide limiters.
pub struct GatewayCredits {
    logons: DefaultDirectRateLimiter,
    logons_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    handshakes: DefaultDirectRateLimiter,
    handshakes_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    account_orders: DefaultKeyedRateLimiter<u64>,
}

/// Why a logon was not even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogonBudget {
    /// This address's logon budget is spent.
    Address,
    /// The gateway's logon budget is spent.
    Global,
}

impl GatewayCredits {
    /// The limiters for `limits`.
    pub fn new(limits: &Limits) -> GatewayCredits {
        GatewayCredits {
            logons: RateLimiter::direct(quota(limits.logons_per_s, limits.logons_per_s)),
            logons_per_ip: RateLimiter::keyed(quota(
                limits.logons_per_ip_per_s,
                limits.logons_per_ip_per_s,
            )),
            handshakes: RateLimiter::direct(quota(
                limits.tls_handshakes_per_s,
                limits.tls_handshakes_per_s,
            )),
            handshakes_per_ip: RateLimiter::keyed(quota(
                limits.tls_handshakes_per_ip_per_s,
                limits.tls_handshakes_per_ip_per_s,
            )),
            // An account's sessions may all send at once: its burst is a quarter second of
            // its rate, at least one session's burst.
            account_orders: RateLimiter::keyed(quota(
                limits.account_orders_per_s,
                (limits.account_orders_per_s / 4).max(limits.orders_burst),
            )),
        }
    }

    /// One logon signature check from `ip`, if both budgets allow it.
    pub fn logon(&self, ip: IpAddr) -> Result<(), LogonBudget> {
        self.logons_per_ip
            .check_key(&crate::acceptor::address_key(ip))
            .map_err(|_| LogonBudget::Address)?;
        self.logons.check().map_err(|_| LogonBudget::Global)
    }

    /// Drops the per-key state of addresses and accounts that are back to full credit (bounds
    /// the keyed limiters' memory; called from the accept loop).
    /// Spends a TLS handshake from `ip`: its address's budget, then the gateway's.
    pub fn handshake(&self, ip: IpAddr) -> Result<(), LogonBudget> {
        self.handshakes_per_ip
            .check_key(&crate::acceptor::address_key(ip))
            .map_err(|_| LogonBudget::Address)?;
        self.handshakes.check().map_err(|_| LogonBudget::Global)
    }

    pub fn tidy(&self) {
        self.handshakes_per_ip.retain_recent();
        self.handshakes_per_ip.shrink_to_fit();
        self.logons_per_ip.retain_recent();
        self.account_orders.retain_recent();
        self.logons_per_ip.shrink_to_fit();
        self.account_orders.shrink_to_fit();
    }
}

/// One session's limiters.
pub struct SessionCredits {
    orders: DefaultDirectRateLimiter,
    modifies: DefaultDirectRateLimiter,
    queries: DefaultDirectRateLimiter,
}

impl SessionCredits {
    /// The limiters for `limits`.
    pub fn new(limits: &Limits) -> SessionCredits {
        SessionCredits {
            orders: RateLimiter::direct(quota(limits.orders_per_s, limits.orders_burst)),
            modifies: RateLimiter::direct(quota(limits.modifies_per_s, limits.orders_burst)),
            queries: RateLimiter::direct(quota(limits.queries_per_s, limits.queries_per_s)),
        }
    }

    /// Whether a request of `class` from `account` is admitted now; spends its credit if so.
    pub fn admit(&self, class: Class, account: u64, gateway: &GatewayCredits) -> bool {
        match class {
            Class::Cancel => true,
            // The session's own credit first: a session over its quota does not spend the
            // account's, which its other sessions share.
            Class::Modify => {
                self.modifies.check().is_ok() && gateway.account_orders.check_key(&account).is_ok()
            }
            Class::Order => {
                self.orders.check().is_ok() && gateway.account_orders.check_key(&account).is_ok()
            }
            Class::Query => self.queries.check().is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_always_pass_and_each_class_has_its_own_quota() {
        let limits = Limits {
            orders_per_s: 1,
            orders_burst: 3,
            modifies_per_s: 1,
            queries_per_s: 2,
            account_orders_per_s: 1000,
            ..Limits::default()
        };
        let gateway = GatewayCredits::new(&limits);
        let session = SessionCredits::new(&limits);
        let admitted = |class, account| {
            (0..100)
                .filter(|_| session.admit(class, account, &gateway))
                .count()
        };
        // Within one instant only the burst passes; GCRA refuses the rest at once.
        assert_eq!(admitted(Class::Order, 1), 3);
        // (Modifies count against the account too: another account here.)
        assert_eq!(admitted(Class::Modify, 2), 3);
        assert_eq!(admitted(Class::Query, 1), 2);
        assert_eq!(admitted(Class::Cancel, 1), 100);
    }

    #[test]
    fn an_account_is_limited_across_its_sessions() {
        let limits = Limits {
            orders_per_s: 1000,
            orders_burst: 5,
            account_orders_per_s: 20,
            ..Limits::default()
        };
        let gateway = GatewayCredits::new(&limits);
        let (a, b) = (SessionCredits::new(&limits), SessionCredits::new(&limits));
        let first = (0..10)
            .filter(|_| a.admit(Class::Order, 7, &gateway))
            .count();
        let second = (0..10)
            .filter(|_| b.admit(Class::Order, 7, &gateway))
            .count();
        assert_eq!(first + second, 5, "the account's burst is shared");
        let c = SessionCredits::new(&limits);
        assert!(c.admit(Class::Order, 8, &gateway), "another account is not");
    }

    #[test]
    fn one_address_cannot_spend_the_global_logon_budget() {
        let limits = Limits {
            logons_per_s: 4,
            logons_per_ip_per_s: 2,
            ..Limits::default()
        };
        let gateway = GatewayCredits::new(&limits);
        let hostile: IpAddr = "10.0.0.1".parse().expect("addr");
        let other: IpAddr = "10.0.0.2".parse().expect("addr");
        let tries: Vec<_> = (0..5).map(|_| gateway.logon(hostile)).collect();
        assert_eq!(tries.iter().filter(|t| t.is_ok()).count(), 2);
        assert_eq!(tries[4], Err(LogonBudget::Address));
        assert_eq!(gateway.logon(other), Ok(()));
        assert_eq!(gateway.logon(other), Ok(()));
        assert_eq!(
            gateway.logon("10.0.0.3".parse().expect("addr")),
            Err(LogonBudget::Global)
        );
        // The same for TLS handshakes, with budgets of their own.
        let limits = Limits {
            tls_handshakes_per_s: 3,
            tls_handshakes_per_ip_per_s: 2,
            ..Limits::default()
        };
        let gateway = GatewayCredits::new(&limits);
        let tries: Vec<_> = (0..4).map(|_| gateway.handshake(hostile)).collect();
        assert_eq!(tries.iter().filter(|t| t.is_ok()).count(), 2);
        assert_eq!(tries[3], Err(LogonBudget::Address));
        assert_eq!(gateway.handshake(other), Ok(()));
        assert_eq!(gateway.handshake(other), Err(LogonBudget::Global));
    }
}
