//! What one step is, as a [`StepRecorder`] sees it: the input a handler was
//! called with, its clock reading, its commands with timer durations
//! resolved to deadlines, and a digest of the state it left (see "Step
//! traces" in the [module doc](super)).

use stateright::actor::{Actor, Id};

use super::StepClock;

/// What a step handled.
pub enum StepInput<A: Actor> {
    /// The actor (re)started with the storage it had saved.
    Start(Option<A::Storage>),
    Msg {
        src: Id,
        msg: A::Msg,
    },
    Timer(A::Timer),
    Random(A::Random),
}

/// A command of a step, with timer durations resolved to deadlines.
pub enum StepCommand<A: Actor> {
    Send(Id, A::Msg),
    SetTimer(A::Timer, StepClock),
    CancelTimer(A::Timer),
    ChooseRandom(String, Vec<A::Random>),
    Save(A::Storage),
}

/// One handler call: when, on what (kept only when a recorder wants it),
/// what it commanded, and the digest of the state it left.
pub struct Step<A: Actor> {
    pub clock: StepClock,
    pub input: Option<StepInput<A>>,
    pub commands: Vec<StepCommand<A>>,
    pub digest: u64,
}

/// Records every step a node takes (see "Step traces" in the [host's module
/// doc](super)). Runs on the actor thread: `record` encodes into a buffer,
/// `flush` writes it; the host calls both as each handler returns (that
/// module doc says why).
pub trait StepRecorder<A: Actor>: Send {
    /// A digest of the actor's state right after a step.
    fn digest(&mut self, state: &A::State) -> u64;
    fn record(&mut self, step: &Step<A>);
    /// Writes what was recorded; called before the next handler, the
    /// barrier and the step's commands.
    fn flush(&mut self);
    /// The barrier of every step recorded so far has passed, and their
    /// commands are about to be carried out. Written before the first of
    /// them, so that a step recorded after the last such mark is one whose
    /// sends never left the node (it was killed, or its barrier failed):
    /// to the rest of the run it never happened, as a crash between two
    /// steps of the model.
    fn committed(&mut self);
}
