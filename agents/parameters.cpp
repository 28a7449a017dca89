#include "agents/parameters.hpp"

#include <boost/math/distributions/normal.hpp>
#include <cmath>

#include "sim/theory/market.hpp"

namespace herdsim::agents {

double apply_scale(sim::ParamSpec::Scale scale, double value, theory::LotteryConvention lottery) {
  switch (scale) {
    case sim::ParamSpec::Scale::lottery_prob:
      return theory::alpha_from_lottery_prob(value, lottery);
    case sim::ParamSpec::Scale::score:
      return theory::theta_from_score(value);
    case sim::ParamSpec::Scale::direct:
      break;
  }
  return value;
}

double sample_distribution(const sim::DistributionSpec& d, double u) {
  using Kind = sim::DistributionSpec::Kind;
  if (d.kind == Kind::uniform) return d.a + (d.b - d.a) * u;
  // Normal and lognormal by inverse CDF, so truncation is exact and costs one draw.
  const boost::math::normal_distribution<double> z(d.a, d.b);
  const bool log_space = d.kind == Kind::lognormal;
  auto to_z = [&](double bound) { return log_space ? std::log(bound) : bound; };
  double lo = 0.0;
  double hi = 1.0;
  if (d.low && (!log_space || *d.low > 0.0)) lo = boost::math::cdf(z, to_z(*d.low));
  if (d.high) hi = boost::math::cdf(z, to_z(*d.high));
  const double x = boost::math::quantile(z, lo + (hi - lo) * u);
  return log_space ? std::exp(x) : x;
}

std::vector<std::pair<std::string, Eigen::VectorXd>> expand_params(const std::vector<NamedParam>& params,
                                                                   int count, int population_index,
                                                                   const sim::CounterRng& rng,
                                                                   theory::LotteryConvention lottery,
                                                                   int first_agent) {
  // Grid radices: the list lengths; the last list varies fastest.
  std::vector<int> radix(params.size(), 1);
  int grid = 1;
  for (std::size_t j = 0; j < params.size(); ++j) {
    if (params[j].spec->form == sim::ParamSpec::Form::list) {
      radix[j] = static_cast<int>(params[j].spec->values.size());
      grid *= radix[j];
    }
  }
  std::vector<std::pair<std::string, Eigen::VectorXd>> out;
  for (std::size_t j = 0; j < params.size(); ++j) {
    const sim::ParamSpec& ps = *params[j].spec;
    int stride = 1;  // product of the radices after j
    for (std::size_t l = j + 1; l < params.size(); ++l) stride *= radix[l];
    Eigen::VectorXd values(count);
    if (ps.form == sim::ParamSpec::Form::distribution) {
      for (int i = 0; i < count; ++i) {
        const double u =
            rng.uniform(sim::Stream::parameters, static_cast<std::uint64_t>(population_index),
                        static_cast<std::uint64_t>(j), static_cast<std::uint64_t>(first_agent + i));
        values[i] = apply_scale(ps.scale, sample_distribution(ps.distribution, u), lottery);
      }
    } else {
      // Map each distinct value once (a lottery probability costs a root solve), then index.
      std::vector<double> mapped;
      if (ps.form == sim::ParamSpec::Form::list) {
        for (double v : ps.values) mapped.push_back(apply_scale(ps.scale, v, lottery));
      } else {
        mapped.push_back(apply_scale(ps.scale, ps.value, lottery));
      }
      for (int i = 0; i < count; ++i) {
        values[i] = ps.form == sim::ParamSpec::Form::list
                        ? mapped[static_cast<std::size_t>(((first_agent + i) % grid) / stride % radix[j])]
                        : mapped[0];
      }
    }
    out.emplace_back(params[j].name, std::move(values));
  }
  return out;
}

std::vector<std::pair<std::string, Eigen::VectorXd>> unscaled_values(const std::vector<NamedParam>& params,
                                                                     int count, int population_index,
                                                                     const sim::CounterRng& rng,
                                                                     int first_agent) {
  std::vector<sim::ParamSpec> direct;
  direct.reserve(params.size());
  for (const NamedParam& p : params) {
    direct.push_back(*p.spec);
    direct.back().scale = sim::ParamSpec::Scale::direct;
  }
  std::vector<NamedParam> named;
  for (std::size_t j = 0; j < params.size(); ++j) named.push_back({params[j].name, &direct[j]});
  return expand_params(named, count, population_index, rng, theory::lottery_win10_sure3, first_agent);
}

}  // namespace herdsim::agents
