#include "io/master_file.hpp"

#include <fmt/format.h>
#include <hdf5.h>
#include <hdf5_hl.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/hdf5_schema.hpp"
#include "io/hdf5_support.hpp"
#include "io/output_file.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"

namespace herdsim::io {

using hdf5::check;
using hdf5::Handle;
using hdf5::make;

int check_part(const std::string& part, const std::vector<ExpectedGroup>& expected) {
  if (!std::filesystem::exists(part)) throw IoError(fmt::format("part file {} is missing", part));
  const RunFile file(part);  // IoError when not a run file or incomplete
  std::vector<std::string> want;
  for (const auto& e : expected) want.push_back(e.group);
  std::sort(want.begin(), want.end());
  std::vector<std::string> have = file.info().groups;
  std::sort(have.begin(), have.end());
  if (expected.empty() && have.size() == 1 && have.front() == "/") have.clear();  // a part with no run
  if (have != want) {
    auto list = [](const std::vector<std::string>& v) {
      return v.empty() ? std::string("none") : fmt::format("{}", fmt::join(v, ", "));
    };
    throw IoError(fmt::format("part file {} holds the groups {}, expected {}", part, list(have), list(want)));
  }
  for (const auto& e : expected) {
    const RunGroupInfo g = file.group(e.group);  // every dataset's shape checked against its attributes
    if (g.sweep_point != e.sweep_point || g.steps != e.steps || g.paths_total != e.paths_total)
      throw IoError(fmt::format(
          "part file {}: group {} is the run '{}' ({} steps, {} paths), expected '{}' ({} "
          "steps, {} paths)",
          part, e.group, g.sweep_point, g.steps, g.paths_total, e.sweep_point, e.steps, e.paths_total));
  }
  return file.info().schema_version;
}

namespace {

/// Copies every attribute of `from` to `to` but `skip` (values as stored, in their file types).
void copy_attributes(hid_t from, hid_t to, const std::string& where, std::string_view skip) {
  struct Context {
    hid_t to;
    const std::string* where;
    std::string_view skip;
  } context{to, &where, skip};
  check(H5Aiterate2(
            from, H5_INDEX_NAME, H5_ITER_INC, nullptr,
            [](hid_t object, const char* name, const H5A_info_t*, void* data) -> herr_t {
              const auto& c = *static_cast<Context*>(data);
              if (name == c.skip) return 0;
              const std::string what = fmt::format("{} attribute {}", *c.where, name);
              Handle attr = make(H5Aopen(object, name, H5P_DEFAULT), H5Aclose, "H5Aopen", what);
              Handle type = make(H5Aget_type(attr.get()), H5Tclose, "H5Aget_type", what);
              Handle space = make(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space", what);
              const hssize_t n = H5Sget_simple_extent_npoints(space.get());
              std::vector<unsigned char> buffer(static_cast<std::size_t>(std::max<hssize_t>(n, 1)) *
                                                H5Tget_size(type.get()));
              check(H5Aread(attr.get(), type.get(), buffer.data()), "H5Aread", what);
              Handle copy = make(H5Acreate2(c.to, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                 H5Aclose, "H5Acreate2", what);
              const herr_t written = H5Awrite(copy.get(), type.get(), buffer.data());
              H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT,
                              buffer.data());  // variable-length strings
              check(written, "H5Awrite", what);
              return 0;
            },
            &context),
        "H5Aiterate2", where);
}

/// Every dataset under `group` of `file`, by its path in the file.
std::vector<std::string> datasets_under(hid_t file, const std::string& group, const std::string& where) {
  Handle g = make(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose, "H5Gopen2", where + ":" + group);
  struct Context {
    std::string prefix;
    std::vector<std::string> names;
  } context{group == "/" ? std::string("/") : group + "/", {}};
  check(H5Ovisit(
            g.get(), H5_INDEX_NAME, H5_ITER_INC,
            [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
              auto& c = *static_cast<Context*>(data);
              if (info->type == H5O_TYPE_DATASET) c.names.push_back(c.prefix + name);
              return 0;
            },
            &context),
        "H5Ovisit", where + ":" + group);
  return context.names;
}

/// H5Ocopy copies the object references of dimension scales (DIMENSION_LIST, REFERENCE_LIST: HDF5 keeps
/// them in variable-length data, which the copy does not remap) as they are, addresses in the source
/// file. The attachments are made again in the copy, by name: the copied group has the source's names.
void reattach_scales(hid_t in, hid_t out, const std::string& group, const std::string& where) {
  struct Attachment {
    std::string dataset;
    unsigned dim;
    std::string scale;
  };
  std::vector<Attachment> attachments;
  for (const auto& name : datasets_under(in, group, where)) {
    Handle ds = make(H5Dopen2(in, name.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", name);
    if (H5Aexists(ds.get(), "DIMENSION_LIST") <= 0) continue;
    Handle space = make(H5Dget_space(ds.get()), H5Sclose, "H5Dget_space", name);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    for (int dim = 0; dim < rank; ++dim) {
      if (H5DSget_num_scales(ds.get(), static_cast<unsigned>(dim)) <= 0) continue;  // none on this axis
      std::vector<std::string> scales;
      int index = 0;
      check(H5DSiterate_scales(
                ds.get(), static_cast<unsigned>(dim), &index,
                [](hid_t, unsigned, hid_t scale, void* data) -> herr_t {
                  const ssize_t length = H5Iget_name(scale, nullptr, 0);
                  if (length <= 0) return -1;
                  std::string scale_name(static_cast<std::size_t>(length) + 1, '\0');
                  H5Iget_name(scale, scale_name.data(), scale_name.size());
                  scale_name.resize(static_cast<std::size_t>(length));
                  static_cast<std::vector<std::string>*>(data)->push_back(scale_name);
                  return 0;
                },
                &scales),
            "H5DSiterate_scales", name);
      for (auto& scale : scales) attachments.push_back({name, static_cast<unsigned>(dim), std::move(scale)});
    }
  }
  // The copied attributes hold the source's addresses: removed before anything is attached again.
  for (const auto& a : attachments) {
    for (const auto& [object, attribute] :
         {std::pair{a.dataset, "DIMENSION_LIST"}, {a.scale, "REFERENCE_LIST"}}) {
      Handle ds =
          make(H5Dopen2(out, object.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", where + ":" + object);
      if (H5Aexists(ds.get(), attribute) > 0)
        check(H5Adelete(ds.get(), attribute), "H5Adelete", where + ":" + object);
    }
  }
  for (const auto& a : attachments) {
    Handle ds =
        make(H5Dopen2(out, a.dataset.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", where + ":" + a.dataset);
    Handle scale =
        make(H5Dopen2(out, a.scale.c_str(), H5P_DEFAULT), H5Dclose, "H5Dopen2", where + ":" + a.scale);
    check(H5DSattach_scale(ds.get(), scale.get(), a.dim), "H5DSattach_scale",
          fmt::format("{}:{} axis {} <- {}", where, a.dataset, a.dim, a.scale));
  }
}

}  // namespace

std::uint64_t merge_run_file(const std::string& master, const std::string& output) {
  hdf5::silence_hdf5_errors();
  std::vector<std::string> groups;
  {
    const RunFile file(master);  // complete, a run file; each group's consistency is checked on read
    groups = file.info().groups;
    for (const auto& g : groups) (void)file.group(g);
  }
  OutputFile claimed(output, OutputFile::OnFailure::remove, "-o", {master});
  const std::string& where = claimed.partial_path();
  Handle fapl = make(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate", where);
  check(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "H5Pset_fclose_degree", where);
  check(H5Pset_file_locking(fapl.get(), 0, 1), "H5Pset_file_locking", where);  // OutputFile holds the lock
  // Default access, as io::RunFile opens it: the file may be open in this process already.
  Handle in = make(H5Fopen(master.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "H5Fopen", master);
  Handle out =
      make(H5Fcreate(where.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, "H5Fcreate", where);
  {
    Handle in_root = make(H5Gopen2(in.get(), "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", master);
    Handle out_root = make(H5Gopen2(out.get(), "/", H5P_DEFAULT), H5Gclose, "H5Gopen2", where);
    copy_attributes(in_root.get(), out_root.get(), master, schema::kComplete);
    const int incomplete = 0;
    Handle space = make(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate", where);
    Handle complete = make(H5Acreate2(out_root.get(), schema::kComplete.data(), H5T_STD_I32LE, space.get(),
                                      H5P_DEFAULT, H5P_DEFAULT),
                           H5Aclose, "H5Acreate2", where + " attribute complete");
    check(H5Awrite(complete.get(), H5T_NATIVE_INT, &incomplete), "H5Awrite", where);
    // Every root member, following links (the source name resolves an external link to its target);
    // dimension scales are attached again in the copy (reattach_scales).
    Handle copy = make(H5Pcreate(H5P_OBJECT_COPY), H5Pclose, "H5Pcreate", where);
    check(H5Pset_copy_object(copy.get(), H5O_COPY_EXPAND_EXT_LINK_FLAG | H5O_COPY_EXPAND_SOFT_LINK_FLAG),
          "H5Pset_copy_object", where);
    std::vector<std::string> members;
    check(H5Literate(
              in_root.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
                static_cast<std::vector<std::string>*>(data)->emplace_back(name);
                return 0;
              },
              &members),
          "H5Literate", master);
    for (const auto& name : members) {
      check(H5Ocopy(in.get(), name.c_str(), out.get(), name.c_str(), copy.get(), H5P_DEFAULT), "H5Ocopy",
            fmt::format("{}:/{} -> {}", master, name, where));
    }
    for (const auto& name : members) {  // after every copy: a scale may be in another member (a single run)
      H5O_info_t info{};
      check(H5Oget_info_by_name(in.get(), name.c_str(), &info, H5P_DEFAULT), "H5Oget_info_by_name", master);
      if (info.type == H5O_TYPE_GROUP) reattach_scales(in.get(), out.get(), "/" + name, where);
    }
    const int done = 1;
    check(H5Awrite(complete.get(), H5T_NATIVE_INT, &done), "H5Awrite", where);
  }
  check(H5Fclose(out.release()), "H5Fclose", where);
  claimed.commit();
  return claimed.bytes_written();
}

}  // namespace herdsim::io
