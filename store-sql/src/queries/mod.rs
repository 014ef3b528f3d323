//! The queries both SQL stores run, written once and compiled for each dialect (this file is
//! the body of [`crate::sqlite`] and of [`crate::postgres`]; `dialect` is that module's).

pub mod audit;
pub mod catalog;
pub mod claims;
pub mod endpoints;
pub mod history;
pub mod page;
pub mod queue;
pub mod rows;

use super::dialect;
