import os


def pytest_addoption(parser):
    parser.addoption("--prefix", default=os.environ.get("LTF_TOPIC_PREFIX", "latechforce"),
                     help="topic prefix whose four event topics are read")
    parser.addoption("--bootstrap", default=os.environ.get("LTF_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.addoption("--registry", default=os.environ.get("LTF_REGISTRY_URL",
                                                          "http://127.0.0.1:8081/apis/ccompat/v7"))
