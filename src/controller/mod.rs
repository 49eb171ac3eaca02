//! Reconciling `QodSession`s with the QoD provider: a pure planner decides the next step, the IO
//! layer carries it out.

pub mod plan;
#[cfg(test)]
mod plan_tests;
