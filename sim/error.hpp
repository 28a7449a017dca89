#pragma once
// herdsim's exception hierarchy. Status codes from C libraries become these in one wrapper layer;
// programmer errors are asserts; nothing throws per agent inside a parallel loop.
#include <stdexcept>
#include <string>

namespace herdsim {

/// Base of every error herdsim reports to a user.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A parameter of a problem or command is out of its domain; the message names it and its value.
class InputError : public Error {
 public:
  using Error::Error;
};

/// A numerical solver did not converge; never replaced by a silent value.
class SolverError : public Error {
 public:
  using Error::Error;
};

/// A scenario file is invalid.
class ScenarioError : public Error {
 public:
  using Error::Error;
};

/// Reading or writing a file failed.
class IoError : public Error {
 public:
  using Error::Error;
};

/// An inference backend failed.
class BackendError : public Error {
 public:
  using Error::Error;
};

}  // namespace herdsim
