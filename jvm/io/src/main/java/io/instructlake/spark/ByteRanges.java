package io.instructlake.spark;

import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.read.Batch;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;
import org.apache.spark.util.SerializableConfiguration;

/**
 * The raw bytes of files, or of byte ranges of files, through Hadoop's FileSystem: whatever URI the
 * cluster can read (file:, s3a:, abfss:, gs:, dbfs:, hdfs:). Nothing is decoded or decompressed here:
 * the Python record scanner reads the bytes exactly as it reads a local file, so damaged and cut files
 * behave the same wherever they are.
 *
 * <p>Options: {@code pieces} (how many), and for piece i: {@code p.i.task} (the Spark partition it is read
 * in; pieces of one task are read in index order), {@code p.i.path}, {@code p.i.from} (first byte sent),
 * {@code p.i.end} (-1: to the end of the file; else no byte at or past it is sent, except that with
 * {@code p.i.line_end} true the bytes go on through the next newline when the last one sent is not one),
 * {@code p.i.lines} (true: count the newlines before {@code from}, reading them). {@code chunk_bytes}
 * sizes the rows; options whose name starts with {@code fs.} are set on the Hadoop configuration.
 *
 * <p>Rows: (task, piece, prefix_lines, data), in file order; every piece gives at least one row.
 */
public final class ByteRanges implements TableProvider {
  public static final StructType SCHEMA = new StructType()
      .add("task", DataTypes.IntegerType, false)
      .add("piece", DataTypes.IntegerType, false)
      .add("prefix_lines", DataTypes.LongType, false)
      .add("data", DataTypes.BinaryType, false);

  @Override
  public StructType inferSchema(CaseInsensitiveStringMap options) {
    return SCHEMA;
  }

  @Override
  public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
    return new RangeTable();
  }

  static final class RangeTable implements Table, SupportsRead {
    @Override
    public String name() {
      return "instructlake_byte_ranges";
    }

    @Override
    @SuppressWarnings("deprecation") // columns() is derived from it by default
    public StructType schema() {
      return SCHEMA;
    }

    @Override
    public java.util.Set<TableCapability> capabilities() {
      return java.util.EnumSet.of(TableCapability.BATCH_READ);
    }

    @Override
    public ScanBuilder newScanBuilder(CaseInsensitiveStringMap options) {
      return () -> new RangeScan(options);
    }
  }

  static final class RangeScan implements Scan, Batch {
    private final CaseInsensitiveStringMap options;

    RangeScan(CaseInsensitiveStringMap options) {
      this.options = options;
    }

    @Override
    public StructType readSchema() {
      return SCHEMA;
    }

    @Override
    public Batch toBatch() {
      return this;
    }

    @Override
    public InputPartition[] planInputPartitions() {
      int n = options.getInt("pieces", 0);
      TreeMap<Integer, List<Piece>> tasks = new TreeMap<>();
      for (int i = 0; i < n; i++) {
        String p = "p." + i + ".";
        String path = options.get(p + "path");
        if (path == null) {
          throw new IllegalArgumentException("byte ranges: option " + p + "path is missing");
        }
        Piece piece = new Piece(i, path, options.getLong(p + "from", 0), options.getLong(p + "end", -1),
            options.getBoolean(p + "lines", false), options.getBoolean(p + "line_end", false));
        tasks.computeIfAbsent(options.getInt(p + "task", 0), k -> new ArrayList<>()).add(piece);
      }
      List<InputPartition> out = new ArrayList<>();
      tasks.forEach((task, pieces) -> out.add(new TaskPartition(task, pieces.toArray(new Piece[0]))));
      return out.toArray(new InputPartition[0]);
    }

    @Override
    public PartitionReaderFactory createReaderFactory() {
      SparkSession spark = SparkSession.active();
      Configuration conf = new Configuration(spark.sparkContext().hadoopConfiguration());
      for (Map.Entry<String, String> e : options.asCaseSensitiveMap().entrySet()) { // Hadoop keys keep case
        if (e.getKey().startsWith("fs.")) {
          conf.set(e.getKey(), e.getValue());
        }
      }
      Broadcast<SerializableConfiguration> shared = JavaSparkContext.fromSparkContext(spark.sparkContext())
          .broadcast(new SerializableConfiguration(conf));
      int chunk = options.getInt("chunk_bytes", 1 << 20);
      return new ReaderFactory(shared, chunk);
    }
  }

  static final class Piece implements Serializable {
    private static final long serialVersionUID = 1L;
    final int index;
    final String path;
    final long from;
    final long end;
    final boolean lines;
    final boolean lineEnd;

    Piece(int index, String path, long from, long end, boolean lines, boolean lineEnd) {
      this.index = index;
      this.path = path;
      this.from = from;
      this.end = end;
      this.lines = lines;
      this.lineEnd = lineEnd;
    }
  }

  static final class TaskPartition implements InputPartition {
    private static final long serialVersionUID = 1L;
    final int task;
    final Piece[] pieces;

    TaskPartition(int task, Piece[] pieces) {
      this.task = task;
      this.pieces = pieces;
    }
  }

  static final class ReaderFactory implements PartitionReaderFactory {
    private static final long serialVersionUID = 1L;
    private final Broadcast<SerializableConfiguration> conf;
    private final int chunk;

    ReaderFactory(Broadcast<SerializableConfiguration> conf, int chunk) {
      this.conf = conf;
      this.chunk = chunk;
    }

    @Override
    public PartitionReader<InternalRow> createReader(InputPartition partition) {
      return new RangeReader((TaskPartition) partition, conf.value().value(), chunk);
    }
  }

  /** The pieces of one task, one chunk per row. */
  static final class RangeReader implements PartitionReader<InternalRow> {
    private static final byte[] EMPTY = new byte[0];
    private final TaskPartition task;
    private final Configuration conf;
    private final int chunk;
    private int next = 0;
    private Piece piece;
    private FSDataInputStream in;
    private long pos;
    private long prefixLines;
    private boolean extending;
    private boolean done;
    private boolean sent;
    private int last = -1; // the last byte sent of this piece
    private InternalRow row;

    RangeReader(TaskPartition task, Configuration conf, int chunk) {
      this.task = task;
      this.conf = conf;
      this.chunk = chunk;
    }

    @Override
    public boolean next() throws IOException {
      while (true) {
        if (piece == null) {
          if (next >= task.pieces.length) {
            return false;
          }
          open(task.pieces[next++]);
        }
        byte[] data = read();
        if (data == null && sent) {
          closePiece();
          continue;
        }
        data = data == null ? EMPTY : data;
        row = new GenericInternalRow(new Object[] {task.task, piece.index, prefixLines, data});
        sent = true;
        if (data.length > 0) {
          last = data[data.length - 1];
        }
        return true;
      }
    }

    private void open(Piece p) throws IOException {
      piece = p;
      Path path = new Path(p.path);
      FileSystem fs = path.getFileSystem(conf);
      in = fs.open(path);
      pos = 0;
      prefixLines = 0;
      extending = false;
      done = false;
      sent = false;
      last = -1;
      if (p.lines) {
        prefixLines = countNewlines(p.from);
      } else if (p.from > 0) {
        in.seek(p.from);
        pos = p.from;
      }
    }

    /** Reads up to `limit` bytes counting newlines; returns the count. Leaves pos at `limit` or EOF. */
    private long countNewlines(long limit) throws IOException {
      byte[] buf = new byte[1 << 20];
      long count = 0;
      while (pos < limit) {
        int n = in.read(buf, 0, (int) Math.min(buf.length, limit - pos));
        if (n < 0) {
          break;
        }
        for (int i = 0; i < n; i++) {
          if (buf[i] == '\n') {
            count++;
          }
        }
        pos += n;
      }
      return count;
    }

    /** The next chunk of this piece, or null when the piece is done. */
    private byte[] read() throws IOException {
      if (done) {
        return null;
      }
      if (!extending) {
        long want = piece.end < 0 ? chunk : Math.min(chunk, piece.end - pos);
        if (want > 0) {
          byte[] data = readUpTo((int) want);
          done = data == null; // the end of the file came first
          return data;
        }
        if (!piece.lineEnd || last == '\n') {
          done = true;
          return null;
        }
        extending = true; // the last line begun before `end` is sent whole
      }
      byte[] data = readUpTo(chunk);
      if (data == null) {
        done = true;
        return null;
      }
      for (int i = 0; i < data.length; i++) {
        if (data[i] == '\n') {
          done = true;
          return Arrays.copyOf(data, i + 1);
        }
      }
      return data;
    }

    private byte[] readUpTo(int n) throws IOException {
      byte[] buf = new byte[n];
      int got = 0;
      while (got < n) {
        int k = in.read(buf, got, n - got);
        if (k < 0) {
          break;
        }
        got += k;
      }
      pos += got;
      if (got == 0) {
        return null;
      }
      return got == n ? buf : Arrays.copyOf(buf, got);
    }

    private void closePiece() throws IOException {
      if (in != null) {
        in.close();
        in = null;
      }
      piece = null;
    }

    @Override
    public InternalRow get() {
      return row;
    }

    @Override
    public void close() throws IOException {
      closePiece();
    }
  }
}
