package kdcvg;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.QueryExecutionException;

/**
 * A Neo4j 5 server for KD-CVG's tests and local use: Bolt on 127.0.0.1 only, auth enabled.
 *
 * <p>Usage: {@code java -cp ... kdcvg.Neo4jLauncher HOME PORT} with the password of the
 * {@code neo4j} user in the environment variable NEO4J_PASSWORD (kept off the command line,
 * which other users can read). Data and logs live under HOME. Prints one line starting with
 * {@code KDCVG-NEO4J-READY} once Bolt accepts logins; SIGTERM shuts the database down cleanly.
 */
public final class Neo4jLauncher {
    private Neo4jLauncher() {}

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 2) {
            System.err.println("usage: Neo4jLauncher HOME PORT (password in NEO4J_PASSWORD)");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        String password = System.getenv("NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            System.err.println("NEO4J_PASSWORD must hold the neo4j user's password (8 characters or more)");
            System.exit(2);
        }
        SocketAddress bolt = new SocketAddress("127.0.0.1", port);
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, bolt)
                .setConfig(BoltConnector.advertised_address, bolt)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, 256L * 1024 * 1024)
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "1 files")
                .setConfig(GraphDatabaseSettings.log_queries, GraphDatabaseSettings.LogQueryLevel.OFF)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(dbms::shutdown, "kdcvg-neo4j-shutdown"));
        setPassword(dbms, password);
        System.out.println("KDCVG-NEO4J-READY bolt://127.0.0.1:" + port);
        System.out.flush();
        new CountDownLatch(1).await(); // serve until killed; the shutdown hook closes the store
    }

    /** Set the neo4j user's password (no change required at first login); a no-op when it is already that. */
    private static void setPassword(DatabaseManagementService dbms, String password) {
        try {
            dbms.database("system").executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));
        } catch (QueryExecutionException e) {
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                throw e;
            }
        }
    }
}
