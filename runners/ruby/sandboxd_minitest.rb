# sandboxd's Minitest driver, for runners/ruby/run.
#
#   ruby sandboxd_minitest.rb <input_dir>      cold: the runner's child (events pipe on
#                                              the fd SANDBOXD_EVENTS_FD names)
#   require_relative "sandboxd_minitest"       fork: the warm parent loads it (no code of
#                                              a job's), and each job's child calls
#                                              Sandboxd.run_tests(input_dir, events_io)
#
# Loads the exercise's *_test.rb files (sorted, as Exercism's Ruby runner does), runs
# every test with Minitest, un-skipped and in the order the tests are defined, and writes
# one JSON line per event to the events pipe as it happens:
#
#   {"e":"start","name":...,"test_code":...}     before a test runs
#   {"e":"result","status":...,"message":...,"output":...}   after it
#   {"e":"error","message":...}                  the tests could not be loaded
#   {"e":"done"}                                 every test ran
#
# A test that exits, aborts or is killed takes nothing of the earlier events with it;
# the parent makes the results document out of what arrived.


require "json"
require "stringio"

module Sandboxd
  OUTPUT_LIMIT = 500
  OUTPUT_TRUNCATED = "\n...\nOutput was truncated. Please limit to 500 chars."
  CAPTURE_CAP = 4096 # bytes of a test's output kept (all of it still goes to the job's)
  BACKTRACE_LINES = 5
  GENERATE = JSON.method(:generate)
  @events = nil
  @pid = nil
  INPUT_DIR = +"/work" # the job's, set by run_tests

  def self.emit(event)
    return unless @events && Process.pid == @pid # a process the tests forked is not the run

    line = GENERATE.call(event) + "\n"
    @events.write(line)
  rescue StandardError
    nil # a closed or broken pipe is the tests' doing: the parent reports what came
  end

  def self.text(value)
    value.to_s.dup.force_encoding(Encoding::UTF_8).scrub("\uFFFD")
  end

  # The exercise's and the image's paths out of a message: a learner sees "two_fer.rb:3".
  def self.clean(message)
    text(message).gsub("#{INPUT_DIR}/", "").gsub(INPUT_DIR, ".")
                 .gsub(%r{/opt/sandboxd/runner/\S*}, "(runner)")
  end

  # The backtrace lines that are the exercise's, relative, at most BACKTRACE_LINES.
  def self.trace(exception)
    lines = Array(exception.backtrace).select do |l|
      l.is_a?(String) && l.start_with?("#{INPUT_DIR}/") && !l.match?(/in `require(_relative)?'\z/)
    end
    lines.first(BACKTRACE_LINES).map { |l| "  #{clean(l)}" }
  end

  # Ruby >= 3.2 keeps error_highlight's snippet (the "^^^^" under the call) in
  # #detailed_message, no longer in #message; a learner wants it, without colour.
  def self.message_of(exception)
    if exception.respond_to?(:detailed_message)
      text = exception.detailed_message(highlight: false).to_s
      suffix = " (#{exception.class})"
      first, rest = text.split("\n", 2)
      first = first.to_s.delete_suffix(suffix)
      rest ? "#{first}\n#{rest}" : first
    else
      exception.message
    end
  end

  def self.describe(exception)
    case exception
    when SyntaxError
      clean(exception.message)
    else
      head = "#{exception.class}: #{clean(message_of(exception))}"
      [head, *trace(exception)].join("\n")
    end
  rescue Exception # rubocop:disable Lint/RescueException - a hostile #message
    "#{exception.class rescue 'Exception'}"
  end

  # "test_no_name_given" -> "No name given", as Exercism's Ruby runner names tests;
  # a Minitest::Spec "test_0001_adds numbers" -> "Adds numbers".
  def self.readable(method_name)
    name = text(method_name).sub(/\Atest_(\d{4}_)?/, "").tr("_", " ")
    name = text(method_name) if name.strip.empty?
    name.capitalize
  end

  @code_cache = {}

  # The body of the test method, as written (skip lines left out), or nil.
  def self.test_code(klass, method_name)
    meth = klass.instance_method(method_name)
    file, line = meth.source_location
    return nil unless file.is_a?(String) && file.start_with?("#{INPUT_DIR}/")

    key = [file, line]
    return @code_cache[key] if @code_cache.key?(key)

    @code_cache[key] = extract_code(meth, file)
  rescue StandardError, ScriptError
    nil
  end

  def self.extract_code(meth, file)
    node = RubyVM::AbstractSyntaxTree.of(meth)
    return nil if node.nil?

    first, last = node.first_lineno, node.last_lineno
    return one_line_code(File.readlines(file, encoding: "UTF-8")[first - 1]) if first == last
    return nil if last - first < 2

    lines = File.readlines(file, encoding: "UTF-8")[first..(last - 2)] || []
    lines = lines.map { |l| text(l) }
                 .reject { |l| l =~ /\A\s*skip\b/ || l =~ /\A\s*#\s*skip\b/ }
    while lines.first && lines.first.strip.empty?
      lines.shift
    end
    lines.pop while lines.last && lines.last.strip.empty?
    return nil if lines.empty?

    indent = lines.reject { |l| l.strip.empty? }.map { |l| l[/\A[ \t]*/].size }.min || 0
    lines.map { |l| l.strip.empty? ? "\n" : l[indent..] }.join.rstrip
  end

  # `def test_x; body; end` or `def test_x = body` -> "body".
  def self.one_line_code(line)
    match = text(line).match(/\A\s*def\s+[\w?!]+(?:\(\s*\))?\s*[;=]\s*(.*?)\s*(?:;\s*end)?\s*\z/)
    match && !match[1].empty? ? match[1] : nil
  end

  # What a test writes to $stdout or $stderr goes to the job's stdout or stderr as
  # always, and the first CAPTURE_CAP bytes of both are kept for the test's "output".
  class Tee
    def initialize(io, kept = String.new(encoding: Encoding::BINARY))
      @io = io
      @kept = kept
    end

    def sibling(io)
      Tee.new(io, @kept)
    end

    def write(*args)
      args.each do |a|
        s = a.to_s
        @kept << s.b[0, CAPTURE_CAP - @kept.bytesize] if @kept.bytesize < CAPTURE_CAP
        @io.write(s)
      end
      args.sum { |a| a.to_s.bytesize }
    end

    def <<(obj)
      write(obj)
      self
    end

    %i[puts print printf putc].each do |name|
      define_method(name) do |*args|
        buffer = StringIO.new
        buffer.send(name, *args)
        write(buffer.string)
        name == :putc ? args.first : nil
      end
    end

    def kept
      Sandboxd.text(@kept)
    end

    def method_missing(name, *args, &block)
      @io.send(name, *args, &block)
    end

    def respond_to_missing?(name, include_private = false)
      @io.respond_to?(name, include_private)
    end
  end

  def self.output_of(tee)
    out = tee.kept
    out.length > OUTPUT_LIMIT ? out[0, OUTPUT_LIMIT] + OUTPUT_TRUNCATED : out
  end

  @order = {}
  @sequence = 0

  # Where each test method was defined: Minitest would shuffle them.
  def self.defined(klass, name)
    (@order[klass] ||= {})[name] ||= (@sequence += 1)
  end

  def self.position(klass, name)
    klass.ancestors.each do |a|
      at = @order.dig(a, name)
      return at if at
    end
    Float::INFINITY
  end
end

# Minitest's parallel executor would start a thread per CPU.
ENV["MT_CPU"] = "0"
require "minitest"
ENV.delete("MT_CPU")

Minitest.class_variable_set(:@@installed_at_exit, true) # `minitest/autorun` runs nothing: we do

module Minitest
  module Assertions
    # Exercism's exercises skip every test but the first; the track's runner runs them all.
    def skip(_msg = nil, _bt = nil); end

    def skip_until(*); end

    # The plain diff Exercism's runner shows (no external diff program).
    def diff(exp, act)
      "Expected: #{mu_pp(exp)}\n  Actual: #{mu_pp(act)}"
    end
  end

  class Test
    def self.method_added(name)
      Sandboxd.defined(self, name.to_s) if name.to_s.start_with?("test_")
      super
    end

    def self.runnable_methods
      methods_matching(/^test_/).sort_by { |m| [Sandboxd.position(self, m), m] }
    end

    def self.test_order
      :sorted # never :parallel: a test's output is captured per process
    end
  end

  # The suites in the order they were defined (first test of each), not shuffled.
  def self.__run(reporter, options)
    suites = Runnable.runnables.reject { |s| s.runnable_methods.empty? }
    suites = suites.each_with_index.sort_by do |s, i|
      [s.runnable_methods.map { |m| Sandboxd.position(s, m) }.min || Float::INFINITY, i]
    end.map(&:first)
    suites.map { |suite| suite.run(reporter, options) }
  end

  class SandboxdReporter < AbstractReporter
    def prerecord(klass, name)
      Sandboxd.emit({ "e" => "start", "name" => Sandboxd.readable(name),
                      "test_code" => Sandboxd.test_code(klass, name) }.compact)
      @stdout = $stdout
      @stderr = $stderr
      @tee = Sandboxd::Tee.new(STDOUT)
      @tee_err = @tee.sibling(STDERR)
      $stdout = @tee
      $stderr = @tee_err
    end

    def record(result)
      $stdout = @stdout if @tee && $stdout.equal?(@tee)
      $stderr = @stderr if @tee_err && $stderr.equal?(@tee_err)
      $stdout = STDOUT unless $stdout.respond_to?(:write)
      $stderr = STDERR unless $stderr.respond_to?(:write)
      event = { "e" => "result", "status" => status_of(result) }
      message = message_of(result) unless %w[pass skip].include?(event["status"])
      event["message"] = message if message && !message.empty?
      output = @tee ? Sandboxd.output_of(@tee) : ""
      event["output"] = output unless output.empty?
      @tee = @tee_err = nil
      Sandboxd.emit(event)
    end

    private

    def status_of(result)
      return "skip" if result.skipped?
      return "error" if result.error?

      result.passed? ? "pass" : "fail"
    end

    def message_of(result)
      failure = result.failure
      if failure.is_a?(UnexpectedError)
        Sandboxd.describe(failure.error)
      else
        Sandboxd.clean(failure.message)
      end
    rescue StandardError
      "The test failed, and its message could not be read."
    end
  end

  def self.plugin_sandboxd_init(_options)
    reporter.reporters.replace([SandboxdReporter.new])
  end
end

Minitest.extensions.replace(["sandboxd"])

module Sandboxd
  # Run the exercise's tests in this process, reporting to `events` (an IO): load the
  # test files, and run the tests from an at_exit hook installed before they load, as
  # under `minitest/autorun` (a hook the exercise installs runs first; some examples rely
  # on it). Returns once the files are loaded: the caller ends the process normally, and
  # the hook ends it with exit!.
  def self.run_tests(input_dir, events)
    INPUT_DIR.replace(File.realpath(input_dir))
    @events = events
    @events.sync = true
    @events.close_on_exec = true
    @pid = Process.pid
    $stdout.sync = true
    $LOAD_PATH.push(INPUT_DIR)

    at_exit do
      # As autorun: a failed `exit`/`abort` while the files loaded runs no test.
      next if $! && !($!.is_a?(SystemExit) && $!.success?)

      Minitest.run(["--no-plugins", "--seed", "1"])
      Sandboxd.emit({ "e" => "done" })
      begin
        $stdout.flush
        STDOUT.flush
      rescue StandardError
        nil
      end
      exit!(0)
    end

    files = Dir.glob("*_test.rb", base: INPUT_DIR).sort.reject { |f| f.end_with?("_benchmark_test.rb") }
    files.map { |f| File.join(INPUT_DIR, f) }.each do |file|
      require file
    rescue ScriptError, StandardError => e
      emit({ "e" => "error", "message" => describe(e) })
      $stdout.flush
      exit!(1)
    end
  end
end

if $PROGRAM_NAME == __FILE__
  events_fd = Integer(ENV.delete("SANDBOXD_EVENTS_FD") || "1000")
  Sandboxd.run_tests(ARGV.fetch(0), IO.new(events_fd, "w"))
end
