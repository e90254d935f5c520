//! Apache Kafka (KRaft) generation for a 3-node pilot and a 2-node extension, compared exactly with reviewed
//! fixtures in tests/data/apache-kafka/ (Kafka cannot run on the project's machines, so the files and command
//! lines are what we can check). Set UPDATE_FIXTURES=1 to rewrite the fixtures, then review the diff.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use pilot_core::pilots::backend::Node;
use pilot_core::pilots::description::{Distribution, KafkaPlan};
use pilot_core::pilots::framework::kafka::apache::{
    extension_layout, node_launches, root_layout, KraftCluster, NodeLaunch,
};

const ROOT: &str = "pilot-20261124-101500-0a1b";
const EXT: &str = "pilot-20261124-102000-2c3d";

fn nodes(first: u8, n: u8) -> Vec<Node> {
    (first..first + n)
        .map(|i| Node {
            name: format!("c401-{i:03}"),
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)),
        })
        .collect()
}

fn plan() -> KafkaPlan {
    KafkaPlan {
        distribution: Distribution::ApacheKafka {
            kafka_home: "/opt/kafka_2.13-3.9.0".into(),
        },
        port: 9092,
        controller_port: 9093,
        partitions_per_node: 12,
        broker_properties: [
            ("num.io.threads".to_string(), "16".to_string()),
            ("log.retention.hours".to_string(), "2".to_string()),
        ]
        .into_iter()
        .collect(),
        ready_timeout_s: 60,
        local_dir: "/tmp/scratch".into(),
    }
}

fn render(launches: &[NodeLaunch]) -> String {
    let mut s = String::new();
    for l in launches {
        s.push_str(&format!(
            "== node {} ({}) -> {}\n",
            l.kraft.node_id,
            l.kraft.node.name,
            l.properties_path.display()
        ));
        s.push_str(&l.properties);
        for spec in [&l.format, &l.start] {
            s.push_str(&format!(
                "$ {} {}\n",
                spec.program.display(),
                spec.args.join(" ")
            ));
            for (k, v) in &spec.env {
                s.push_str(&format!("  env {k}={v}\n"));
            }
            s.push_str(&format!(
                "  cwd {}\n  log {}\n",
                spec.cwd.display(),
                spec.log.display()
            ));
        }
    }
    s
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/apache-kafka")
        .join(name);
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        actual,
        expected,
        "generated output differs from {}",
        path.display()
    );
}

fn kafka_home(p: &KafkaPlan) -> &Path {
    match &p.distribution {
        Distribution::ApacheKafka { kafka_home } => kafka_home,
        _ => unreachable!(),
    }
}

#[test]
fn three_node_pilot_and_its_extension_generate_exact_files_and_commands() {
    let plan = plan();
    let (cluster, kraft) = root_layout(ROOT, &nodes(1, 3), &plan);
    assert_eq!(
        cluster.voters,
        "1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093"
    );
    let root = node_launches(
        ROOT,
        Path::new("/work/pilots").join(ROOT).as_path(),
        kafka_home(&plan),
        &cluster,
        &kraft,
        &plan,
    );
    check("root-3-nodes.txt", &render(&root));

    // The extension joins the same cluster: same id and voters, fresh node ids after the parent's.
    let parent = KraftCluster { ..cluster.clone() };
    let ext_nodes = extension_layout(&nodes(4, 2), 3);
    assert_eq!(
        ext_nodes.iter().map(|k| k.node_id).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(ext_nodes.iter().all(|k| !k.controller));
    let ext = node_launches(
        EXT,
        Path::new("/work/pilots").join(EXT).as_path(),
        kafka_home(&plan),
        &parent,
        &ext_nodes,
        &plan,
    );
    check("extension-2-nodes.txt", &render(&ext));
}

#[test]
fn five_node_pilot_has_three_controllers() {
    let (cluster, kraft) = root_layout(ROOT, &nodes(1, 5), &plan());
    assert_eq!(kraft.iter().filter(|k| k.controller).count(), 3);
    assert_eq!(cluster.internal_replication, 3);
    assert_eq!(cluster.voters.split(',').count(), 3);
    let (one, _) = root_layout(ROOT, &nodes(1, 1), &plan());
    assert_eq!(one.internal_replication, 1);
}
